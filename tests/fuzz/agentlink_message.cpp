// Agent-link frames as a peer sends them (agentlink/messages.h decode): a controller reads
// what agents send and an agent what the controller sends, both after mutual TLS, but a
// compromised or buggy peer chooses every byte. Contract checked: any frame decodes or fails
// with an error value; a decoded message encodes to a frame that decodes to the same message
// (encode(decode(encode(m))) == encode(m)), and is the kind of one side or the other.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "agentlink/messages.h"
#include "fuzz/fuzz_check.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  namespace link = berth::agentlink;
  const std::string_view frame(reinterpret_cast<const char*>(data), size);
  auto message = link::decode(frame);
  if (!message) return 0;
  FUZZ_CHECK(link::agent_may_send(*message) || link::controller_may_send(*message));
  const std::string encoded = link::encode(*message);
  auto again = link::decode(encoded);
  FUZZ_CHECK(again.ok());
  FUZZ_CHECK(again->index() == message->index());
  FUZZ_CHECK(link::encode(*again) == encoded);
  return 0;
}
