#pragma once
// The agent link's frame limit, shared by both ends: decode() and the WebSocket reader refuse a
// larger frame and close the connection, so Server::send() and Client::send() refuse to send one
// (kPayloadTooLarge) instead of dropping the link. Producers of large messages (task results,
// deploy logs) keep under it by truncating at the source.
#include <cstddef>

namespace berth::agentlink {

inline constexpr std::size_t kMaxFrameBytes = 1024 * 1024;

}  // namespace berth::agentlink
