// Fusion adaptation of the parse tree for X3 attribute propagation.
//
// Single-member nodes (Ident, StringLit, Path, ...) are deliberately not
// adapted: X3 would unwrap them to their member and drop their span. Their
// rules fill them with semantic actions instead.
#pragma once

#include <boost/fusion/include/adapt_struct.hpp>

#include "dsl/ast.h"

BOOST_FUSION_ADAPT_STRUCT(cepheus::dsl::ast::Operation, op, operand)
BOOST_FUSION_ADAPT_STRUCT(cepheus::dsl::ast::Chain, first, rest)
BOOST_FUSION_ADAPT_STRUCT(cepheus::dsl::ast::Unary, op, operand)
BOOST_FUSION_ADAPT_STRUCT(cepheus::dsl::ast::Call, name, args)
BOOST_FUSION_ADAPT_STRUCT(cepheus::dsl::ast::Step, absent, name, types, filter, quantifier)
BOOST_FUSION_ADAPT_STRUCT(cepheus::dsl::ast::ArrowStep, arrow, step)
BOOST_FUSION_ADAPT_STRUCT(cepheus::dsl::ast::Pattern, first, rest)
BOOST_FUSION_ADAPT_STRUCT(cepheus::dsl::ast::Clause, keyword, value)
BOOST_FUSION_ADAPT_STRUCT(cepheus::dsl::ast::Rule, name, clauses)
BOOST_FUSION_ADAPT_STRUCT(cepheus::dsl::ast::Lookup, table, key, field)
BOOST_FUSION_ADAPT_STRUCT(cepheus::dsl::ast::Table, name, clauses)
BOOST_FUSION_ADAPT_STRUCT(cepheus::dsl::ast::NamedList, name, items)
BOOST_FUSION_ADAPT_STRUCT(cepheus::dsl::ast::Source, types, filter, field)
BOOST_FUSION_ADAPT_STRUCT(cepheus::dsl::ast::Window, kind, size, every)
BOOST_FUSION_ADAPT_STRUCT(cepheus::dsl::ast::Computed, name, call)
BOOST_FUSION_ADAPT_STRUCT(cepheus::dsl::ast::Counter, name, clauses)
BOOST_FUSION_ADAPT_STRUCT(cepheus::dsl::ast::Aggregate, name, clauses)
BOOST_FUSION_ADAPT_STRUCT(cepheus::dsl::ast::Hole, expr, spec)
BOOST_FUSION_ADAPT_STRUCT(cepheus::dsl::ast::FieldEntry, name, value)
BOOST_FUSION_ADAPT_STRUCT(cepheus::dsl::ast::SchemaField, name, type)
BOOST_FUSION_ADAPT_STRUCT(cepheus::dsl::ast::EventDecl, name, body)
