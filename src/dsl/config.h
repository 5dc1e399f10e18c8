// X3 configuration shared by the grammar and its driver: iterator and skipper.
//
// The skipper eats whitespace (line breaks included) and '#' comments, which
// may end at the end of the file without a newline.
#pragma once

#include <type_traits>

#include <boost/spirit/home/x3.hpp>

namespace cepheus::dsl::grammar {

namespace x3 = boost::spirit::x3;

using iterator_type = const char*;

inline const auto comment = '#' >> *(x3::char_ - x3::eol) >> (x3::eol | x3::eoi);
inline const auto skipper = x3::space | comment;
using skipper_type = std::decay_t<decltype(skipper)>;

// Tag under which the driver passes the start of the buffer, so the
// annotation handler can store byte offsets.
struct source_base_tag;

}  // namespace cepheus::dsl::grammar
