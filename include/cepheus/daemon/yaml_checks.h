// Checks of a YAML document that yaml-cpp does not make: a key given twice in
// one mapping (yaml-cpp keeps both and lookups find the first, so an edit
// lower in a file silently does nothing), documents that explode through
// their aliases ("billion laughs": a few lines that expand to billions of
// nodes), and keys a schema does not know (a typo such as `expectd:` would
// otherwise be ignored). Used by the configuration and the rule-test files.
#pragma once

#include <cstddef>
#include <initializer_list>
#include <string>
#include <string_view>

#include "cepheus/common/status.h"

namespace YAML {
class Node;
}  // namespace YAML

namespace cepheus::daemon {

// Walks `doc` through its aliases, visiting at most `max_nodes` nodes.
// InvalidArgument "FILE:LINE:COL: key 'a' is given twice (first at line L)",
// or "FILE: more than N nodes once its aliases are expanded".
Status CheckYamlDocument(const YAML::Node& doc, const std::string& file, size_t max_nodes);

// `node` must be a mapping whose keys are among `known`: InvalidArgument
// "FILE:LINE:COL: unknown key 'k' in WHAT (expected a, b or c)", or
// "FILE:LINE:COL: WHAT must be a mapping".
Status CheckMapKeys(const YAML::Node& node, const std::string& file, std::string_view what,
                    std::initializer_list<std::string_view> known);

}  // namespace cepheus::daemon
