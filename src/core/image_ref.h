#pragma once
// Container image references, parsed with the semantics of github.com/distribution/reference
// v0.6.0 ParseNormalizedNamed (the parser docker, containerd and podman agree on), so that the
// registry host berth derives -- and therefore where a stored credential is sent -- is the one
// the container runtime on the agent will contact. docs/image-references.md lists the rules,
// the one deliberate deviation (a first segment that looks like a host but is not one is
// rejected instead of yielding an empty host) and examples.
//
// Contract: pure functions, no I/O, no allocation beyond the result, linear in the input
// length (no std::regex, no recursion), safe to call from any thread. Any byte string is
// accepted as input: the result is either an ImageRef or an Error with code kValidation,
// `field` set to the field name the caller passes ("image_ref" by default) and a one-line
// message "<field>: <reason>" that names the component, the rule it breaks and a 1-based
// position in the input. The input itself is never quoted: it comes from API callers, and a
// mistaken paste can carry a secret (https://user:token@host/...).
#include <string>
#include <string_view>
#include <vector>

#include "common/result.h"

namespace berth::core {

struct ImageRef {
  // Normalized registry host, with port if one was given: "docker.io", "ghcr.io",
  // "127.0.0.1:5000", "localhost:5000", "[::1]:5000". Case is preserved as written
  // (upstream does not fold case of hosts).
  std::string registry_host;
  std::string repository;  // path without host, e.g. "library/nginx"
  std::string tag;         // empty when none was given (NOT defaulted to "latest" here)
  std::string digest;      // "sha256:<64 hex>" (or sha384/sha512), empty when none was given
  bool ecr = false;        // registry_host is an AWS ECR host (see is_ecr_host)

  // registry_host + "/" + repository, e.g. "docker.io/library/nginx".
  std::string name() const;
  // name[:tag][@digest]: upstream String() of the normalized reference.
  std::string normalized() const;
  // Upstream FamiliarString: "docker.io/library/x:1" -> "x:1", "docker.io/u/x" -> "u/x";
  // other hosts are kept.
  std::string familiar() const;
  // Keys under which a credential for this reference is written into an OCI auth file:
  // {registry_host}; Docker Hub gets {"docker.io", "https://index.docker.io/v1/"}.
  std::vector<std::string> auth_keys() const;
  // name@digest: what an agent pulls once the tag has been resolved. The tag is dropped.
  std::string pinned(std::string_view digest) const;
  // Upstream TagNameOnly(...).String(): name:latest when neither tag nor digest was given,
  // otherwise normalized() unchanged.
  std::string with_default_tag() const;

  bool operator==(const ImageRef&) const = default;
};

// Parses `text` as ParseNormalizedNamed does ("nginx" -> docker.io/library/nginx,
// "index.docker.io/x/y" -> docker.io/x/y, "ghcr.io/o/r:1" -> ghcr.io, o/r, tag 1).
// Errors: kValidation with field `field` (see the file comment).
Result<ImageRef> parse_image_ref(std::string_view text, std::string_view field = "image_ref");

// True when `host` (without port) is <12 digits>.dkr.ecr[-fips].<region>.amazonaws.com[.cn],
// compared case-insensitively because DNS names are. A host with a port is not ECR.
bool is_ecr_host(std::string_view host);

}  // namespace berth::core
