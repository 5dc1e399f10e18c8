// YAML checks: an explicit stack over the document (no recursion, so a deep
// document cannot overflow it), counting every node visited, aliases
// included: the count bounds the time of this walk and of every later walk
// that expands the document (such as a rule test's events turned into JSON).
// Within each mapping, scalar keys are compared pairwise through a sorted copy.
#include "cepheus/daemon/yaml_checks.h"

#include <algorithm>
#include <vector>

#include <fmt/format.h>
#include <yaml-cpp/yaml.h>

namespace cepheus::daemon {

namespace {

std::string Where(const std::string& file, const YAML::Mark& m) {
  return fmt::format("{}:{}:{}", file, m.line + 1, m.column + 1);
}

Status DuplicateKeys(const YAML::Node& map, const std::string& file) {
  std::vector<std::pair<std::string, YAML::Mark>> keys;
  for (const auto& kv : map) {
    if (kv.first.IsScalar()) keys.emplace_back(kv.first.Scalar(), kv.first.Mark());
  }
  std::stable_sort(keys.begin(), keys.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
  for (size_t i = 1; i < keys.size(); ++i) {
    if (keys[i].first != keys[i - 1].first) continue;
    return Status::InvalidArgument(fmt::format("{}: key '{}' is given twice (first at line {})",
                                               Where(file, keys[i].second), keys[i].first,
                                               keys[i - 1].second.line + 1));
  }
  return Status::Ok();
}

}  // namespace

Status CheckYamlDocument(const YAML::Node& doc, const std::string& file, size_t max_nodes) {
  std::vector<YAML::Node> stack{doc};
  size_t visited = 0;
  while (!stack.empty()) {
    YAML::Node n = stack.back();
    stack.pop_back();
    if (++visited > max_nodes) {
      return Status::InvalidArgument(
          fmt::format("{}: more than {} nodes once its aliases are expanded", file, max_nodes));
    }
    if (n.IsMap()) {
      if (Status st = DuplicateKeys(n, file); !st.ok()) return st;
      for (const auto& kv : n) {
        stack.push_back(kv.first);
        stack.push_back(kv.second);
      }
    } else if (n.IsSequence()) {
      for (const auto& item : n) stack.push_back(item);
    }
  }
  return Status::Ok();
}

Status CheckMapKeys(const YAML::Node& node, const std::string& file, std::string_view what,
                    std::initializer_list<std::string_view> known) {
  if (!node.IsMap()) {
    return Status::InvalidArgument(fmt::format("{}: {} must be a mapping", Where(file, node.Mark()), what));
  }
  for (const auto& kv : node) {
    std::string key = kv.first.IsScalar() ? kv.first.Scalar() : "?";
    if (std::find(known.begin(), known.end(), key) != known.end()) continue;
    std::string expected;
    size_t i = 0;
    for (auto k : known) {
      expected += i == 0 ? "" : i + 1 == known.size() ? " or " : ", ";
      expected += k;
      ++i;
    }
    return Status::InvalidArgument(fmt::format("{}: unknown key '{}' in {} (expected {})",
                                               Where(file, kv.first.Mark()), key, what, expected));
  }
  return Status::Ok();
}

}  // namespace cepheus::daemon
