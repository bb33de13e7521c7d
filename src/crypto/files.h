#pragma once
// File helpers shared by the sealer and the certificate store: private directories, atomic
// writes (temp file + fsync + rename + directory fsync) and reads of secret files that refuse
// group- or world-accessible modes. Internal to the crypto module; errors are values whose
// messages name the path and never contain file contents.
#include <sys/types.h>
#include <cstddef>
#include <filesystem>
#include <string_view>

#include "common/result.h"
#include "common/secret.h"

namespace berth::crypto::detail {

// Creates `dir` (and missing parents) with mode 0700 for the last component. An existing
// directory is left as it is.
Status ensure_private_dir(const std::filesystem::path& dir);

// Makes a rename or create in `dir` durable.
Status fsync_dir(const std::filesystem::path& dir);

// Replaces `path` with `bytes` atomically: readers see the old file or the new one, never a
// partial one, also across a crash. The file gets exactly `mode` (independent of the umask).
Status write_file_atomic(const std::filesystem::path& path, std::string_view bytes, mode_t mode);

// Creates `path` with `bytes` only when it does not exist yet (kConflict when it does); the
// content appears whole or not at all.
Status create_file_exclusive(const std::filesystem::path& path, std::string_view bytes,
                             mode_t mode);

// Reads a regular file of at most `max_size` bytes (kDataLoss when larger). With
// `require_private`, a file with any group or other permission bit is refused
// (kFailedPrecondition). A missing file is kNotFound.
Result<Secret> read_file(const std::filesystem::path& path, std::size_t max_size,
                         bool require_private);

}  // namespace berth::crypto::detail
