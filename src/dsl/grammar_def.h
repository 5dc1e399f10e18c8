// The rule grammar, section 1-3 of the rule-language spec, in X3.
//
// Keywords are matched as whole words (`kw`), and reserved only where the
// grammar expects them: a clause keyword only at clause position, `and`/`or`/
// `not`/`in`/`true`/`false`/`null` only inside expressions. Expectation points
// (`>`) turn a wrong token into an error at that token; rule names read as the
// words of the message ("expected a duration such as 90s or 2m"). A rule name
// that starts with '!' is a complete message (used for unterminated strings,
// where the error belongs at the opening quote).
//
// Expressions use one Chain node per precedence level (calc9's approach):
//   or < and < not < comparison < + - < * / % < unary minus < primary
#pragma once

#include <string>

#include "dsl/ast.h"
#include "dsl/ast_adapted.h"
#include "dsl/clauses.h"
#include "dsl/config.h"

namespace cepheus::dsl::grammar {

using x3::alnum;
using x3::alpha;
using x3::char_;
using x3::lexeme;
using x3::lit;

// Stores each Tagged node's byte span.
struct annotate {
  template <typename Iterator, typename T, typename Context>
  void on_success(Iterator const& first, Iterator const& last, T& node, Context const& ctx) const {
    if constexpr (std::is_base_of_v<ast::Tagged, T>) {
      const char* base = x3::get<source_base_tag>(ctx);
      node.begin = static_cast<uint32_t>(first - base);
      node.end = static_cast<uint32_t>(last - base);
    }
  }
};

inline auto kw(char const* s) { return lexeme[lit(s) >> !(alnum | '_')]; }
inline auto kw_str(char const* s) { return lexeme[x3::string(s) >> !(alnum | '_')]; }

// Semantic actions for single-member nodes (X3 does not unwrap those well).
inline const auto set_name = [](auto& ctx) { x3::_val(ctx).name = x3::_attr(ctx); };
inline const auto set_value = [](auto& ctx) { x3::_val(ctx).value = x3::_attr(ctx); };
inline const auto set_word = [](auto& ctx) { x3::_val(ctx).word = x3::_attr(ctx); };
inline const auto set_text = [](auto& ctx) { x3::_val(ctx).text = x3::_attr(ctx); };
inline const auto set_parts = [](auto& ctx) { x3::_val(ctx).parts = x3::_attr(ctx); };
inline const auto set_names = [](auto& ctx) { x3::_val(ctx).names = x3::_attr(ctx); };
inline const auto set_items = [](auto& ctx) { x3::_val(ctx).items = x3::_attr(ctx); };
inline const auto set_fields = [](auto& ctx) { x3::_val(ctx).fields = x3::_attr(ctx); };
inline const auto set_min = [](auto& ctx) { x3::_val(ctx).min = x3::_val(ctx).max = x3::_attr(ctx); };
inline const auto set_open = [](auto& ctx) { x3::_val(ctx).max = -1; };
inline const auto set_max = [](auto& ctx) { x3::_val(ctx).max = x3::_attr(ctx); };
inline const auto set_plus = [](auto& ctx) { x3::_val(ctx).min = 1, x3::_val(ctx).max = -1; };
inline const auto set_star = [](auto& ctx) { x3::_val(ctx).min = 0, x3::_val(ctx).max = -1; };
inline const auto set_opt = [](auto& ctx) { x3::_val(ctx).min = 0, x3::_val(ctx).max = 1; };

// ---- rule declarations ------------------------------------------------------
struct name_str_class;
struct ident_class : annotate {};
struct number_class : annotate {};
struct escape_class;
struct string_body_class;
struct unterminated_class;
struct string_lit_class : annotate {};
struct word_lit_class : annotate {};
struct path_parts_class;
struct path_class : annotate {};
struct call_class : annotate {};
struct list_items_class;
struct list_class : annotate {};
struct primary_class;
struct unary_minus_class : annotate {};
struct neg_class;
struct mul_op_class : annotate {};
struct mul_class : annotate {};
struct add_op_class : annotate {};
struct add_class : annotate {};
struct cmp_op_class : annotate {};
struct cmp_class : annotate {};
struct not_class;
struct unary_not_class : annotate {};
struct and_op_class : annotate {};
struct and_class : annotate {};
struct or_op_class : annotate {};
struct expr_class : annotate {};
struct types_list_class;
struct types_class : annotate {};
struct quantifier_class : annotate {};
struct step_class : annotate {};
struct arrow_step_class : annotate {};
struct pattern_class : annotate {};
struct template_text_class;
struct template_expr_class;
struct template_parts_class;
struct template_hole_class;
struct template_class : annotate {};
struct string_list_class : annotate {};
struct duration_class : annotate {};
struct severity_class : annotate {};
struct skip_class : annotate {};
struct count_class : annotate {};
struct word_text_class;
struct absent_kw_class;
struct binding_class;
struct word_lit_text_class;
struct clause_class : annotate {};
struct rule_class : annotate {};
struct lookup_class : annotate {};
struct lookup_field_class;
struct table_clause_class : annotate {};
struct table_class : annotate {};
struct named_list_class : annotate {};
struct source_class : annotate {};
struct source_field_class;
struct window_class : annotate {};
struct computed_class : annotate {};
struct compute_list_class : annotate {};
struct compute_items_class;
struct counter_clause_class : annotate {};
struct counter_class : annotate {};
struct aggregate_clause_class : annotate {};
struct aggregate_class : annotate {};

const x3::rule<name_str_class, std::string> name_str = "a name";
const x3::rule<ident_class, ast::Ident> ident = "a name";
const x3::rule<number_class, ast::NumberLit> number = "a number";
const x3::rule<escape_class, char> escape = "one of \\\" \\\\ \\n \\t after a backslash";
const x3::rule<string_body_class, std::string> string_body = "a string";
const x3::rule<unterminated_class> unterminated = "!unterminated string (no closing '\"' on this line)";
const x3::rule<string_lit_class, ast::StringLit> string_lit = "a string in double quotes";
const x3::rule<word_lit_class, ast::WordLit> word_lit = "true, false or null";
const x3::rule<path_parts_class, std::vector<std::string>> path_parts = "a field path";
const x3::rule<path_class, ast::Path> path = "a field path";
const x3::rule<call_class, ast::Call> call = "a function call";
const x3::rule<list_items_class, std::vector<ast::Chain>> list_items = "list items";
const x3::rule<list_class, ast::List> list = "a list";
const x3::rule<primary_class, ast::Operand> primary = "a value, a field path or '('";
const x3::rule<unary_minus_class, ast::Unary> unary_minus = "a negation";
const x3::rule<neg_class, ast::Operand> neg_expr = "an operand";
const x3::rule<mul_op_class, ast::Operation> mul_operation = "an operand";
const x3::rule<mul_class, ast::Chain> mul_expr = "an operand";
const x3::rule<add_op_class, ast::Operation> add_operation = "an operand";
const x3::rule<add_class, ast::Chain> add_expr = "an operand";
const x3::rule<cmp_op_class, ast::Operation> cmp_operation = "an operand";
const x3::rule<cmp_class, ast::Chain> cmp_expr = "an operand";
const x3::rule<not_class, ast::Operand> not_expr = "an operand";
const x3::rule<unary_not_class, ast::Unary> unary_not = "an operand";
const x3::rule<and_op_class, ast::Operation> and_operation = "an operand";
const x3::rule<and_class, ast::Chain> and_expr = "an operand";
const x3::rule<or_op_class, ast::Operation> or_operation = "an operand";
const x3::rule<expr_class, ast::Chain> expr = "an expression";
const x3::rule<types_list_class, std::vector<std::string>> types_list = "an event type";
const x3::rule<types_class, ast::Types> types = "an event type, '(' or any";
const x3::rule<quantifier_class, ast::Quantifier> quantifier = "a quantifier";
const x3::rule<step_class, ast::Step> step = "a pattern step";
const x3::rule<arrow_step_class, ast::ArrowStep> arrow_step = "a pattern step";
const x3::rule<pattern_class, ast::Pattern> pattern = "a pattern";
const x3::rule<template_text_class, std::string> template_text = "text";
const x3::rule<template_expr_class, ast::Hole> template_expr = "an expression";
const x3::rule<template_parts_class, std::vector<ast::TemplatePart>> template_parts = "text";
const x3::rule<template_hole_class, ast::Hole> template_hole =
    "an expression after '{' (write {{ for a literal brace)";
struct field_entry_class : annotate {};
struct field_list_class : annotate {};
struct field_items_class;
struct field_list_raw_class;
const x3::rule<field_entry_class, ast::FieldEntry> field_entry = "a name, ':' and an expression";
const x3::rule<field_items_class, std::vector<ast::FieldEntry>> field_items = "a name, ':' and an expression";
const x3::rule<field_list_class, ast::FieldList> field_list = "'{' and fields such as total: sum(o.amount)";
const x3::rule<field_list_raw_class, ast::FieldList> field_list_raw = "'{' and fields such as total: sum(o.amount)";
struct schema_field_class : annotate {};
struct schema_object_class : annotate {};
struct schema_object_raw_class;
struct schema_fields_class;
struct schema_type_class;
struct schema_word_class : annotate {};
struct schema_word_raw_class;
struct event_decl_class : annotate {};
const x3::rule<schema_field_class, ast::SchemaField> schema_field = "a field name, ':' and its type";
const x3::rule<schema_fields_class, std::vector<ast::SchemaField>> schema_fields = "a field name, ':' and its type";
const x3::rule<schema_object_class, ast::SchemaObject> schema_object = "'{' and the fields";
const x3::rule<schema_object_raw_class, ast::SchemaObject> schema_object_raw = "'{' and the fields";
const x3::rule<schema_type_class, ast::SchemaType> schema_type =
    "a type (string, number, bool, time, list or any) or '{'";
const x3::rule<schema_word_class, ast::Word> schema_word = "a type (string, number, bool, time, list or any)";
const x3::rule<schema_word_raw_class, ast::Word> schema_word_raw = "a type (string, number, bool, time, list or any)";
const x3::rule<event_decl_class, ast::EventDecl> event_decl = "an event declaration";
struct format_spec_class : annotate {};
struct format_spec_raw_class;
const x3::rule<format_spec_class, ast::Word> format_spec = "a number format such as .2f or ,";
const x3::rule<format_spec_raw_class, ast::Word> format_spec_raw = "a number format such as .2f or ,";
const x3::rule<template_class, ast::Template> template_lit = "a message in double quotes";
const x3::rule<string_list_class, ast::StringList> string_list = "a string in double quotes";
const x3::rule<duration_class, ast::Word> duration = "a duration such as 90s or 2m";
const x3::rule<severity_class, ast::Word> severity = "a severity (low, medium, high or critical)";
const x3::rule<skip_class, ast::Word> skip_policy = "past_last, to_next or none";
const x3::rule<count_class, ast::Word> count_word = "a whole number";
const x3::rule<word_text_class, std::string> word_text = "a word";
const x3::rule<absent_kw_class, std::string> absent_kw = "absent";
const x3::rule<binding_class, ast::Ident> binding = "a name and ':'";
const x3::rule<word_lit_text_class, std::string> word_lit_text = "true, false or null";
const x3::rule<clause_class, ast::Clause> clause = "a clause";
const x3::rule<rule_class, ast::Rule> rule_ = "a rule";
const x3::rule<lookup_class, ast::Lookup> lookup = "a table lookup";
const x3::rule<lookup_field_class, std::vector<std::string>> lookup_field =
    "'.' and a field of the table's record (for example profiles[o.user_id].country)";
const x3::rule<table_clause_class, ast::Clause> table_clause = "key, time or history";
const x3::rule<table_class, ast::Table> table_ = "a table";
const x3::rule<named_list_class, ast::NamedList> named_list = "a list";
const x3::rule<source_class, ast::Source> source = "an event type";
const x3::rule<source_field_class, std::vector<std::string>> source_field =
    "'.' and the field it reads (for example order.amount)";
const x3::rule<window_class, ast::Window> window = "tumbling or hopping";
const x3::rule<computed_class, ast::Computed> computed = "a name, '=' and a function (for example total = sum(amount))";
const x3::rule<compute_items_class, std::vector<ast::Computed>> compute_items =
    "a name, '=' and a function (for example total = sum(amount))";
const x3::rule<compute_list_class, ast::ComputeList> compute_list =
    "a name, '=' and a function (for example total = sum(amount))";
const x3::rule<counter_clause_class, ast::Clause> counter_clause =
    "key, count, sum, avg, min, max, distinct, over or resolution";
const x3::rule<counter_class, ast::Counter> counter_ = "a counter";
const x3::rule<aggregate_clause_class, ast::Clause> aggregate_clause =
    "from, group by, window, compute, alert when, severity, emit, description or tags";
const x3::rule<aggregate_class, ast::Aggregate> aggregate_ = "an aggregate";
struct compute_list_raw_class;
const x3::rule<compute_list_raw_class, ast::ComputeList> compute_list_raw =
    "a name, '=' and a function (for example total = sum(amount))";

// X3 passes no attribute to on_success when a rule's right-hand side has a
// semantic action, so each action rule (`x_raw`) is wrapped by an annotated
// rule without one (`x`).
struct ident_raw_class;
const x3::rule<ident_raw_class, ast::Ident> ident_raw = "a name";
struct number_raw_class;
const x3::rule<number_raw_class, ast::NumberLit> number_raw = "a number";
struct string_lit_raw_class;
const x3::rule<string_lit_raw_class, ast::StringLit> string_lit_raw = "a string in double quotes";
struct word_lit_raw_class;
const x3::rule<word_lit_raw_class, ast::WordLit> word_lit_raw = "true, false or null";
struct path_raw_class;
const x3::rule<path_raw_class, ast::Path> path_raw = "a field path";
struct list_raw_class;
const x3::rule<list_raw_class, ast::List> list_raw = "a list";
struct types_raw_class;
const x3::rule<types_raw_class, ast::Types> types_raw = "an event type, '(' or any";
struct template_lit_raw_class;
const x3::rule<template_lit_raw_class, ast::Template> template_lit_raw = "a message in double quotes";
struct string_list_raw_class;
const x3::rule<string_list_raw_class, ast::StringList> string_list_raw = "a string in double quotes";
struct duration_raw_class;
const x3::rule<duration_raw_class, ast::Word> duration_raw = "a duration such as 90s or 2m";
struct severity_raw_class;
const x3::rule<severity_raw_class, ast::Word> severity_raw = "a severity (low, medium, high or critical)";
struct skip_policy_raw_class;
const x3::rule<skip_policy_raw_class, ast::Word> skip_policy_raw = "past_last, to_next or none";
struct count_word_raw_class;
const x3::rule<count_word_raw_class, ast::Word> count_word_raw = "a whole number";

struct quantifier_raw_class;
struct count_int_class;
const x3::rule<quantifier_raw_class, ast::Quantifier> quantifier_raw = "a quantifier";
// Named, so a count too large for an int reads as words, not as X3's type.
const x3::rule<count_int_class, int> count_int = "a count from 0 to 100000";
const auto count_int_def = x3::int_;

// ---- definitions ---------------------------------------------------------------
inline const auto reserved =
    kw("and") | kw("or") | kw("not") | kw("in") | kw("true") | kw("false") | kw("null");

const auto name_str_def = lexeme[(alpha | char_('_')) >> *(alnum | char_('_'))];
const auto ident_def = ident_raw;
const auto ident_raw_def = name_str[set_name];
// A duration in an expression (`30s`, `1h`) is its number of milliseconds,
// so `b.ts - a.ts < 30s` compares a gap between two events' times.
inline const x3::symbols<double> duration_units = [] {
  x3::symbols<double> units;
  units.add("ms", 1)("s", 1000)("m", 60000)("h", 3600000)("d", 86400000);
  return units;
}();
inline const auto set_duration = [](auto& ctx) {
  auto& attr = x3::_attr(ctx);
  x3::_val(ctx).value = static_cast<double>(boost::fusion::at_c<0>(attr)) * boost::fusion::at_c<1>(attr);
};
const auto number_def = number_raw;
const auto number_raw_def =
    lexeme[x3::uint32 >> duration_units >> !(alnum | '_')][set_duration] |
    lexeme[&(x3::digit | ('-' >> x3::digit) | ('.' >> x3::digit)) >> x3::double_][set_value];

const auto escape_def = char_('"') | char_('\'') | char_('\\') | (lit('n') >> x3::attr('\n')) |
                        (lit('t') >> x3::attr('\t'));
// Single quotes too, so a string can be written inside a message's hole:
// emit "domain {split_part(email, '@', -1)}".
const auto string_body_def = lexeme['"' >> *(('\\' > escape) | ~char_("\"\\\n")) >> '"'] |
                             lexeme['\'' >> *(('\\' > escape) | ~char_("'\\\n")) >> '\''];
const auto unterminated_def = x3::eps(false);
const auto string_lit_def = string_lit_raw;
const auto string_lit_raw_def = string_body[set_value] | ((&lit('"') | &lit('\'')) > unterminated);
const auto word_lit_text_def = kw_str("true") | kw_str("false") | kw_str("null");
const auto word_lit_def = word_lit_raw;
const auto word_lit_raw_def = word_lit_text[set_word];

const auto path_parts_def = (!reserved >> name_str) >> *('.' >> name_str);
const auto path_def = path_raw;
const auto path_raw_def = path_parts[set_parts];
const auto call_def = name_str >> '(' > -(expr % ',') > ')';
const auto list_items_def = -(expr % ',');
const auto list_def = list_raw;
const auto list_raw_def = ('[' > list_items > ']')[set_items];
// `name[` starts a lookup: a table name, then its key in brackets.
const auto lookup_def = (!reserved >> name_str) >> '[' > expr > ']' > lookup_field;
const auto lookup_field_def = '.' > path_parts;
const auto primary_def = number | string_lit | word_lit | list | lookup | call | path | ('(' > expr > ')');
const auto unary_minus_def = x3::string("-") > neg_expr;
const auto neg_expr_def = primary | unary_minus;
const auto mul_operation_def = (x3::string("*") | x3::string("/") | x3::string("%")) > neg_expr;
const auto mul_expr_def = neg_expr >> *mul_operation;
const auto add_operation_def = (x3::string("+") | (x3::string("-") >> !lit('>'))) > mul_expr;
const auto add_expr_def = mul_expr >> *add_operation;
const auto cmp_operation_def =
    (x3::string("==") | x3::string("!=") | x3::string("<=") | x3::string(">=") |
     x3::string("<") | x3::string(">") | (kw("not") >> kw("in") >> x3::attr(std::string("not in"))) |
     kw_str("in")) > add_expr;
const auto cmp_expr_def = add_expr >> x3::repeat(0, 1)[cmp_operation];
const auto unary_not_def = kw_str("not") > not_expr;
const auto not_expr_def = unary_not | cmp_expr;
const auto and_operation_def = kw_str("and") > not_expr;
const auto and_expr_def = not_expr >> *and_operation;
const auto or_operation_def = kw_str("or") > and_expr;
const auto expr_def = and_expr >> *or_operation;

// A bare event type cannot be a clause keyword, so a pattern that stops early
// ("match a: x ->" then "within 1m") reads as a missing step, not as a step of
// type "within".
inline const x3::symbols<x3::unused_type> clause_words = [] {
  x3::symbols<x3::unused_type> words;
  for (const auto& c : kClauses) words.add(c.word);
  for (const char* w : kDeclarations) words.add(w);
  return words;
}();
inline const auto clause_keyword = lexeme[clause_words >> !(alnum | '_')];
const auto types_list_def = ('(' > (name_str % '|') > ')') | x3::repeat(1)[!clause_keyword >> name_str];
const auto types_def = types_raw;
const auto types_raw_def = types_list[set_names];
const auto quantifier_def = quantifier_raw;
const auto quantifier_raw_def = (('{' > count_int)[set_min] > -(lit(',')[set_open] >> -count_int[set_max]) > '}') |
                            lit('+')[set_plus] | lit('*')[set_star] | lit('?')[set_opt];
const auto absent_kw_def = kw_str("absent") >> &(name_str | '(');
// The lookahead makes sure a type name without ':' is never kept as a name
// (X3 does not roll back a partly parsed optional sequence).
const auto binding_def = &(name_str >> ':') >> ident >> ':';
const auto step_def = -absent_kw >> -binding >> types >>
                      -('[' > expr > ']') >> -quantifier;
const auto arrow_step_def = (x3::string("->") | x3::string("=>")) > step;
const auto pattern_def = step >> *arrow_step;

const auto template_text_def = +((lit("{{") >> x3::attr('{')) | (lit("}}") >> x3::attr('}')) |
                                 ('\\' > escape) | ~char_("\"\\\n{"));
// Inside a message the hole's expression may not cross a line end.
// A quote cannot start a hole's expression (it would read as a string to the
// end of the line): `{` then `"` is a brace the writer meant literally.
const auto format_spec_def = format_spec_raw;
const auto format_spec_raw_def = lexeme[*~char_("}\"\n")][set_text];
const auto template_hole_def = x3::skip(x3::blank)[!lit('"') >> expr >> -(':' >> format_spec)];
const auto template_expr_def = '{' > template_hole > '}';
const auto template_parts_def = *(template_text | template_expr);
const auto template_lit_def = template_lit_raw;
const auto template_lit_raw_def = lexeme['"' >> template_parts >> '"'][set_parts] | (&lit('"') > unterminated);
const auto string_list_def = string_list_raw;
const auto string_list_raw_def = (string_lit % ',')[set_items];

const auto word_text_def = lexeme[+(alnum | char_('.') | char_('_') | char_('-'))];
const auto duration_def = duration_raw;
const auto duration_raw_def = word_text[set_text];
const auto severity_def = severity_raw;
const auto severity_raw_def = word_text[set_text];
const auto skip_policy_def = skip_policy_raw;
const auto skip_policy_raw_def = word_text[set_text];
const auto count_word_def = count_word_raw;
const auto count_word_raw_def = word_text[set_text];

const auto clause_def = (kw_str("description") > string_lit) | (kw_str("severity") > severity) |
                        (kw_str("key") > path) | (kw_str("match") > pattern) |
                        (kw_str("where") > expr) | (kw_str("within") > duration) |
                        (kw_str("skip") > skip_policy) | (kw_str("cooldown") > duration) |
                        (kw_str("limit") > count_word) | (kw_str("emit") > template_lit) |
                        (kw_str("tags") > string_list) | (kw_str("fields") > field_list);
const auto field_entry_def = ident > ':' > expr;
const auto field_items_def = field_entry % ',';
const auto field_list_def = field_list_raw;
const auto field_list_raw_def = ('{' > field_items > '}')[set_items];
const auto schema_word_def = schema_word_raw;
const auto schema_word_raw_def = name_str[set_text];
const auto schema_type_def = schema_object | schema_word;
const auto schema_field_def = ident > ':' > schema_type;
const auto schema_fields_def = -(schema_field % ',');
const auto schema_object_def = schema_object_raw;
const auto schema_object_raw_def = ('{' > schema_fields > '}')[set_fields];
const auto event_decl_def = kw("event") > ident > schema_object;
const auto rule__def = kw("rule") > ident > *clause;
const auto table_clause_def = (kw_str("key") > path) | (kw_str("time") > path) | (kw_str("history") > duration);
const auto table__def = kw("table") > ident > *table_clause;
const auto named_list_def = kw("list") > ident > '=' > list;

BOOST_SPIRIT_DEFINE(count_int, format_spec, format_spec_raw)
BOOST_SPIRIT_DEFINE(field_entry, field_items, field_list, field_list_raw)
BOOST_SPIRIT_DEFINE(schema_word, schema_word_raw, schema_type, schema_field, schema_fields, schema_object,
                    schema_object_raw, event_decl)
BOOST_SPIRIT_DEFINE(quantifier_raw, ident_raw, number_raw, string_lit_raw, word_lit_raw, path_raw, list_raw, types_raw, template_lit_raw, string_list_raw, duration_raw, severity_raw, skip_policy_raw, count_word_raw,
                    name_str, ident, number, escape, string_body, unterminated, string_lit,
                    word_lit, path_parts, path, call, list_items, list, primary, unary_minus,
                    neg_expr, mul_operation, mul_expr, add_operation, add_expr, cmp_operation,
                    cmp_expr, unary_not, not_expr, and_operation, and_expr, or_operation, expr,
                    types_list, types, quantifier, step, arrow_step, pattern, template_text,
                    template_expr, template_hole, template_parts, template_lit, string_list, duration, severity,
                    skip_policy, count_word, word_text, word_lit_text, absent_kw, binding, clause, rule_)
// Counters and aggregates (sections 6.2 and 6.3).
const auto source_field_def = '.' > path_parts;
const auto source_def = types >> -('[' > expr > ']') >> -source_field;
const auto window_def = (kw_str("tumbling") > duration > x3::attr(boost::optional<ast::Word>())) |
                        (kw_str("hopping") > duration > (kw("every") > duration));
const auto computed_def = ident > '=' > call;
const auto compute_items_def = computed % ',';
const auto compute_list_def = compute_list_raw;
const auto compute_list_raw_def = compute_items[set_items];
const auto counter_clause_def = (kw_str("key") > path) | (kw_str("over") > duration) |
                                (kw_str("resolution") > duration) | (kw_str("description") > string_lit) |
                                ((kw_str("count") | kw_str("sum") | kw_str("avg") | kw_str("min") | kw_str("max") |
                                  kw_str("distinct")) > source);
const auto counter__def = kw("counter") > ident > *counter_clause;
const auto aggregate_clause_def = (kw_str("from") > source) | (kw_str("group") > kw("by") > path) |
                                  (kw_str("window") > window) | (kw_str("compute") > compute_list) |
                                  (kw_str("alert") > kw("when") > expr) | (kw_str("severity") > severity) |
                                  (kw_str("emit") > template_lit) | (kw_str("description") > string_lit) |
                                  (kw_str("tags") > string_list);
const auto aggregate__def = kw("aggregate") > ident > *aggregate_clause;

BOOST_SPIRIT_DEFINE(lookup, lookup_field, table_clause, table_, named_list)
BOOST_SPIRIT_DEFINE(source, source_field, window, computed, compute_items, compute_list, compute_list_raw,
                    counter_clause, counter_, aggregate_clause, aggregate_)

}  // namespace cepheus::dsl::grammar
