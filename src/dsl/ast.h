// The X3 parse tree: what the grammar builds, before any check.
//
// Shaped for X3's attribute propagation (fusion-adapted structs, x3::variant,
// forward_ast for recursion), as in the calc and rexpr examples. Every node
// that derives from Tagged gets its byte span from the annotation handler in
// grammar_def.h. The checker (checker.cc) lowers this into dsl::Rule.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <boost/optional.hpp>
#include <boost/spirit/home/x3/support/ast/variant.hpp>

namespace cepheus::dsl::ast {

namespace x3 = boost::spirit::x3;

struct Tagged {
  uint32_t begin = 0;
  uint32_t end = 0;
};

struct Ident : Tagged {
  std::string name;
};
struct NumberLit : Tagged {
  double value = 0;
};
struct StringLit : Tagged {
  std::string value;
};
struct WordLit : Tagged {  // true, false, null
  std::string word;
};
struct Path : Tagged {
  std::vector<std::string> parts;
};
// A raw word where a duration, severity, skip policy or count is expected;
// validated by the checker so the message can name the bad text.
struct Word : Tagged {
  std::string text;
};

struct Call;
struct Unary;
struct Chain;
struct List;
struct Lookup;

struct Operand : x3::variant<NumberLit, StringLit, WordLit, Path, x3::forward_ast<Call>,
                             x3::forward_ast<Unary>, x3::forward_ast<List>,
                             x3::forward_ast<Chain>, x3::forward_ast<Lookup>> {
  using base_type::base_type;
  using base_type::operator=;
};

struct Operation : Tagged {
  std::string op;
  Operand operand;
};

// first op1 x1 op2 x2 ... at one precedence level, folded left by the checker.
struct Chain : Tagged {
  Operand first;
  std::vector<Operation> rest;
};

struct Unary : Tagged {
  std::string op;
  Operand operand;
};

struct Call : Tagged {
  std::string name;
  std::vector<Chain> args;
};

struct List : Tagged {
  std::vector<Chain> items;
};

// `profiles[o.user_id].country`: a field of a table's record (section 6.1).
struct Lookup : Tagged {
  std::string table;
  Chain key;
  std::vector<std::string> field;
};

struct Quantifier : Tagged {
  int min = 1;
  int max = 1;  // -1: unbounded
};

struct Types : Tagged {
  std::vector<std::string> names;
};

struct Step : Tagged {
  boost::optional<std::string> absent;
  boost::optional<Ident> name;
  Types types;
  boost::optional<Chain> filter;
  boost::optional<Quantifier> quantifier;
};

struct ArrowStep : Tagged {
  std::string arrow;
  Step step;
};

struct Pattern : Tagged {
  Step first;
  std::vector<ArrowStep> rest;
};

// `{expr}` or `{expr:spec}` in a message; the spec (".2f", ",") formats a number.
struct Hole : Tagged {
  Chain expr;
  boost::optional<Word> spec;
};

struct TemplatePart : x3::variant<std::string, Hole> {
  using base_type::base_type;
  using base_type::operator=;
};

struct Template : Tagged {
  std::vector<TemplatePart> parts;
};

struct StringList : Tagged {
  std::vector<StringLit> items;
};

// What a counter counts (`count order[amount > 0]`, `sum order.amount`) or an
// aggregate reads (`from order[status != "test"]`): event types, a filter,
// and for a counter's sum, avg, min, max and distinct the field.
struct Source : Tagged {
  Types types;
  boost::optional<Chain> filter;
  boost::optional<std::vector<std::string>> field;
};

// `window tumbling 5m` / `window hopping 15m every 5m`.
struct Window : Tagged {
  std::string kind;
  Word size;
  boost::optional<Word> every;
};

// `compute total = sum(amount), orders = count()`.
struct Computed : Tagged {
  Ident name;
  Call call;
};
struct ComputeList : Tagged {
  std::vector<Computed> items;
};

// `fields { total: sum(o.amount), countries: distinct(o.country) }`.
struct FieldEntry : Tagged {
  Ident name;
  Chain value;
};
struct FieldList : Tagged {
  std::vector<FieldEntry> items;
};

struct ClauseValue
    : x3::variant<StringLit, Word, Path, Pattern, Chain, Template, StringList, Source, Window, ComputeList,
                  FieldList> {
  using base_type::base_type;
  using base_type::operator=;
};

struct Clause : Tagged {
  std::string keyword;
  ClauseValue value;
};

struct Rule : Tagged {
  Ident name;
  std::vector<Clause> clauses;
};

// `table profiles key user_id time updated_at history 30d` (section 6.1).
struct Table : Tagged {
  Ident name;
  std::vector<Clause> clauses;  // key, time, history
};

// `list risky_bins = ["411111", "550000"]`.
struct NamedList : Tagged {
  Ident name;
  List items;
};

// `counter NAME key ... count|sum|avg|min|max|distinct ... over ... [resolution ...]` (section 6.2).
struct Counter : Tagged {
  Ident name;
  std::vector<Clause> clauses;
};

// `aggregate NAME from ... group by ... window ... compute ... [alert when ...]` (section 6.3).
struct Aggregate : Tagged {
  Ident name;
  std::vector<Clause> clauses;
};

// `event order { user_id: string, card: { bin: string } }`: the fields of an
// event type, each a type word or an object of more fields.
struct SchemaObject;
struct SchemaType : x3::variant<Word, x3::forward_ast<SchemaObject>> {
  using base_type::base_type;
  using base_type::operator=;
};
struct SchemaField : Tagged {
  Ident name;
  SchemaType type;
};
struct SchemaObject : Tagged {
  std::vector<SchemaField> fields;
};
struct EventDecl : Tagged {
  Ident name;
  SchemaObject body;
};

// The declarations of one file, in the order written.
struct File {
  std::vector<Rule> rules;
  std::vector<Table> tables;
  std::vector<NamedList> lists;
  std::vector<Counter> counters;
  std::vector<Aggregate> aggregates;
  std::vector<EventDecl> events;
};

}  // namespace cepheus::dsl::ast
