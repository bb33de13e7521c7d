#include "common/hex.h"

#include <iterator>

#include <boost/algorithm/hex.hpp>

namespace berth {

std::string hex_lower(std::string_view bytes) {
  std::string out;
  out.reserve(bytes.size() * 2);
  boost::algorithm::hex_lower(bytes.begin(), bytes.end(), std::back_inserter(out));
  return out;
}

}  // namespace berth
