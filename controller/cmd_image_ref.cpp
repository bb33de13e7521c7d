// `berth-controller image-ref parse REF`: an operator's "where will my credential be sent?"
// tool. Prints the parse as one JSON object on stdout and exits 0, or prints the reason on
// stderr (one line) and exits 2 with nothing on stdout. Absent tag/digest are "" (not null) so
// the output has the same shape as core::ImageRef, whose fields are empty strings when absent.
#include <cstdio>
#include <memory>
#include <string>

#include <nlohmann/json.hpp>

#include "command.h"
#include "core/image_ref.h"

namespace berth::controller {
namespace {

constexpr int kExitInvalid = 2;

struct ParseOptions {
  std::string ref;
};

int run_parse(const ParseOptions& opts) {
  auto parsed = core::parse_image_ref(opts.ref);
  if (!parsed.ok()) {
    // The message is already one line with control bytes escaped (core/image_ref.h contract).
    std::fprintf(stderr, "%s\n", parsed.error().message.c_str());
    return kExitInvalid;
  }
  const core::ImageRef& ref = parsed.value();
  nlohmann::json out = {
      {"registry_host", ref.registry_host},
      {"repository", ref.repository},
      {"tag", ref.tag},
      {"digest", ref.digest},
      {"normalized", ref.normalized()},
      {"auth_keys", ref.auth_keys()},
      {"ecr", ref.ecr},
  };
  // A successful parse contains only ASCII from the reference grammar, so dump cannot throw.
  const std::string text = out.dump();
  std::fprintf(stdout, "%s\n", text.c_str());
  return std::fflush(stdout) == 0 ? 0 : 1;
}

const Registration kRegistration([](CLI::App& root, Runner& run) {
  auto* group = root.add_subcommand("image-ref", "Inspect container image references");
  group->require_subcommand(1);
  auto* parse = group->add_subcommand(
      "parse",
      "Parse an image reference and print its registry host, repository, tag, digest "
      "and auth-file keys as JSON (exit 2 with the reason when invalid)");
  auto opts = std::make_shared<ParseOptions>();
  parse->add_option("REF", opts->ref, "Image reference, e.g. nginx:1.25 or ghcr.io/org/app:v1")
      ->required();
  parse->callback([opts, &run] { run = [opts] { return run_parse(*opts); }; });
});

}  // namespace
}  // namespace berth::controller
