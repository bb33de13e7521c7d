// Image references: the tables translate the cases of distribution/reference v0.6.0
// (normalize_test.go, reference_test.go, regexp_test.go) to what ParseNormalizedNamed returns,
// plus berth's own cases (ECR, auth-file keys, lengths at the limits).
#include <catch2/catch.hpp>

#include <cstddef>
#include <random>
#include <string>
#include <vector>

#include "core/image_ref.h"

using berth::ErrorCode;
using berth::core::ImageRef;
using berth::core::is_ecr_host;
using berth::core::parse_image_ref;

namespace {

const std::string kHex64 = "dbcc1c35ac38df41fd2f5e4130b32ffdb93ebae8b3dbe638c23575912276fc9c";
const std::string kD256 = "sha256:" + kHex64;
const std::string kF256 = "sha256:" + std::string(64, 'f');
const std::string kBusyboxDigest =
    "sha256:86e0e091d0da6bde2456dbb48306f3956bbeb2eae1b5b9a43045843f69fe4aaa";
const std::string kD384 = "sha384:" + std::string(96, 'a');
const std::string kD512 = "sha512:" + std::string(128, 'f');
const std::string kIdentifier = "1a3f5e7d9c1b3a5f7e9d1c3b5a7f9e1d3c5b7a9f1e3d5d7c9b1a3f5e7d9c1b3a";

std::string repeat(const std::string& s, std::size_t n) {
  std::string out;
  for (std::size_t i = 0; i < n; ++i) out += s;
  return out;
}

struct Valid {
  std::string input;
  std::string host;
  std::string repository;
  std::string tag;
  std::string digest;
  std::string normalized;
  std::string familiar;
  bool ecr = false;
};

struct Invalid {
  std::string input;
  std::string reason;  // a substring the message must contain: names the component and rule
};

std::vector<Valid> valid_cases() {
  const std::string long_path = "x/" + std::string(253, 'a');  // the longest path: 255
  const std::string tag128 = "t" + std::string(127, 'g');
  return {
      // normalize_test.go TestValidateReferenceName (valid names)
      {"docker/docker", "docker.io", "docker/docker", "", "", "docker.io/docker/docker",
       "docker/docker"},
      {"library/debian", "docker.io", "library/debian", "", "", "docker.io/library/debian",
       "debian"},
      {"debian", "docker.io", "library/debian", "", "", "docker.io/library/debian", "debian"},
      {"docker.io/docker/docker", "docker.io", "docker/docker", "", "", "docker.io/docker/docker",
       "docker/docker"},
      {"docker.io/library/debian", "docker.io", "library/debian", "", "",
       "docker.io/library/debian", "debian"},
      {"docker.io/debian", "docker.io", "library/debian", "", "", "docker.io/library/debian",
       "debian"},
      {"index.docker.io/docker/docker", "docker.io", "docker/docker", "", "",
       "docker.io/docker/docker", "docker/docker"},
      {"index.docker.io/library/debian", "docker.io", "library/debian", "", "",
       "docker.io/library/debian", "debian"},
      {"index.docker.io/debian", "docker.io", "library/debian", "", "", "docker.io/library/debian",
       "debian"},
      {"127.0.0.1:5000/docker/docker", "127.0.0.1:5000", "docker/docker", "", "",
       "127.0.0.1:5000/docker/docker", "127.0.0.1:5000/docker/docker"},
      {"127.0.0.1:5000/library/debian", "127.0.0.1:5000", "library/debian", "", "",
       "127.0.0.1:5000/library/debian", "127.0.0.1:5000/library/debian"},
      {"127.0.0.1:5000/debian", "127.0.0.1:5000", "debian", "", "", "127.0.0.1:5000/debian",
       "127.0.0.1:5000/debian"},
      {"192.168.0.1", "docker.io", "library/192.168.0.1", "", "", "docker.io/library/192.168.0.1",
       "192.168.0.1"},
      {"192.168.0.1:80", "docker.io", "library/192.168.0.1", "80", "",
       "docker.io/library/192.168.0.1:80", "192.168.0.1:80"},
      {"192.168.0.1:8/debian", "192.168.0.1:8", "debian", "", "", "192.168.0.1:8/debian",
       "192.168.0.1:8/debian"},
      {"192.168.0.2:25000/debian", "192.168.0.2:25000", "debian", "", "",
       "192.168.0.2:25000/debian", "192.168.0.2:25000/debian"},
      {"thisisthesongthatneverendsitgoesonandonandonthisisthesongthatnev", "docker.io",
       "library/thisisthesongthatneverendsitgoesonandonandonthisisthesongthatnev", "", "",
       "docker.io/library/thisisthesongthatneverendsitgoesonandonandonthisisthesongthatnev",
       "thisisthesongthatneverendsitgoesonandonandonthisisthesongthatnev"},
      {"[fc00::1]:5000/docker", "[fc00::1]:5000", "docker", "", "", "[fc00::1]:5000/docker",
       "[fc00::1]:5000/docker"},
      {"[fc00::1]:5000/docker/docker", "[fc00::1]:5000", "docker/docker", "", "",
       "[fc00::1]:5000/docker/docker", "[fc00::1]:5000/docker/docker"},
      {"[fc00:1:2:3:4:5:6:7]:5000/library/debian", "[fc00:1:2:3:4:5:6:7]:5000", "library/debian",
       "", "", "[fc00:1:2:3:4:5:6:7]:5000/library/debian",
       "[fc00:1:2:3:4:5:6:7]:5000/library/debian"},
      // A 64-hex name is allowed once a host removes the ambiguity with an image ID.
      {"docker.io/" + kIdentifier, "docker.io", "library/" + kIdentifier, "", "",
       "docker.io/library/" + kIdentifier, kIdentifier},
      // An uppercase first segment can only be a host.
      {"Docker/docker", "Docker", "docker", "", "", "Docker/docker", "Docker/docker"},
      {"DOCKER/docker", "DOCKER", "docker", "", "", "DOCKER/docker", "DOCKER/docker"},
      // TestValidateRemoteName
      {"docker-rules/docker", "docker.io", "docker-rules/docker", "", "",
       "docker.io/docker-rules/docker", "docker-rules/docker"},
      {"docker---rules/docker", "docker.io", "docker---rules/docker", "", "",
       "docker.io/docker---rules/docker", "docker---rules/docker"},
      {"doc/docker", "docker.io", "doc/docker", "", "", "docker.io/doc/docker", "doc/docker"},
      {"d/docker", "docker.io", "d/docker", "", "", "docker.io/d/docker", "d/docker"},
      {"jess/t", "docker.io", "jess/t", "", "", "docker.io/jess/t", "jess/t"},
      {"dock__er/docker", "docker.io", "dock__er/docker", "", "", "docker.io/dock__er/docker",
       "dock__er/docker"},
      // TestParseRepositoryInfo
      {"fooo/bar", "docker.io", "fooo/bar", "", "", "docker.io/fooo/bar", "fooo/bar"},
      {"index.docker.io/fooo/bar", "docker.io", "fooo/bar", "", "", "docker.io/fooo/bar",
       "fooo/bar"},
      {"nonlibrary/ubuntu", "docker.io", "nonlibrary/ubuntu", "", "", "docker.io/nonlibrary/ubuntu",
       "nonlibrary/ubuntu"},
      {"other/library", "docker.io", "other/library", "", "", "docker.io/other/library",
       "other/library"},
      {"127.0.0.1:8000/private/moonbase", "127.0.0.1:8000", "private/moonbase", "", "",
       "127.0.0.1:8000/private/moonbase", "127.0.0.1:8000/private/moonbase"},
      {"example.com/private/moonbase", "example.com", "private/moonbase", "", "",
       "example.com/private/moonbase", "example.com/private/moonbase"},
      {"example.com:8000/privatebasee", "example.com:8000", "privatebasee", "", "",
       "example.com:8000/privatebasee", "example.com:8000/privatebasee"},
      {"ubuntu-12.04-base", "docker.io", "library/ubuntu-12.04-base", "", "",
       "docker.io/library/ubuntu-12.04-base", "ubuntu-12.04-base"},
      {"index.docker.io/library/ubuntu-12.04-base", "docker.io", "library/ubuntu-12.04-base", "",
       "", "docker.io/library/ubuntu-12.04-base", "ubuntu-12.04-base"},
      // library/ with a nested path is not an official image: familiar keeps the prefix.
      {"library/foo/bar", "docker.io", "library/foo/bar", "", "", "docker.io/library/foo/bar",
       "library/foo/bar"},
      {"store/foo/bar", "docker.io", "store/foo/bar", "", "", "docker.io/store/foo/bar",
       "store/foo/bar"},
      {"Foo/bar", "Foo", "bar", "", "", "Foo/bar", "Foo/bar"},
      {"FOO/bar", "FOO", "bar", "", "", "FOO/bar", "FOO/bar"},
      // TestParseReferenceWithTagAndDigest
      {"busybox:latest@" + kBusyboxDigest, "docker.io", "library/busybox", "latest", kBusyboxDigest,
       "docker.io/library/busybox:latest@" + kBusyboxDigest, "busybox:latest@" + kBusyboxDigest},
      // TestParseAnyReference (the named ones)
      {"redis", "docker.io", "library/redis", "", "", "docker.io/library/redis", "redis"},
      {"redis:latest", "docker.io", "library/redis", "latest", "", "docker.io/library/redis:latest",
       "redis:latest"},
      {"redis@" + kD256, "docker.io", "library/redis", "", kD256,
       "docker.io/library/redis@" + kD256, "redis@" + kD256},
      {"dmcgowan/myapp:latest", "docker.io", "dmcgowan/myapp", "latest", "",
       "docker.io/dmcgowan/myapp:latest", "dmcgowan/myapp:latest"},
      {"docker.io/dmcgowan/myapp@" + kD256, "docker.io", "dmcgowan/myapp", "", kD256,
       "docker.io/dmcgowan/myapp@" + kD256, "dmcgowan/myapp@" + kD256},
      // ParseNormalizedNamed (unlike ParseAnyReference) reads a bare digest as name:tag.
      {kD256, "docker.io", "library/sha256", kHex64, "", "docker.io/library/sha256:" + kHex64,
       "sha256:" + kHex64},
      {kHex64.substr(0, 63), "docker.io", "library/" + kHex64.substr(0, 63), "", "",
       "docker.io/library/" + kHex64.substr(0, 63), kHex64.substr(0, 63)},
      {"dbcc1", "docker.io", "library/dbcc1", "", "", "docker.io/library/dbcc1", "dbcc1"},
      // TestNormalizedSplitHostname
      {"test.com/foo", "test.com", "foo", "", "", "test.com/foo", "test.com/foo"},
      {"test_com/foo", "docker.io", "test_com/foo", "", "", "docker.io/test_com/foo",
       "test_com/foo"},
      {"test.com:8080/foo", "test.com:8080", "foo", "", "", "test.com:8080/foo",
       "test.com:8080/foo"},
      {"test-com:8080/foo", "test-com:8080", "foo", "", "", "test-com:8080/foo",
       "test-com:8080/foo"},
      {"xn--n3h.com/foo", "xn--n3h.com", "foo", "", "", "xn--n3h.com/foo", "xn--n3h.com/foo"},
      {"xn--n3h.com:18080/foo", "xn--n3h.com:18080", "foo", "", "", "xn--n3h.com:18080/foo",
       "xn--n3h.com:18080/foo"},
      {"docker.io/library/foo/bar", "docker.io", "library/foo/bar", "", "",
       "docker.io/library/foo/bar", "library/foo/bar"},
      // A Docker Hub repository whose first component reads as a host keeps docker.io/ in its
      // short form, which would otherwise name another registry (found by the image_ref fuzzer).
      {"docker.io/zonaws.com/team/app:80", "docker.io", "zonaws.com/team/app", "80", "",
       "docker.io/zonaws.com/team/app:80", "docker.io/zonaws.com/team/app:80"},
      {"docker.io/localhost/app", "docker.io", "localhost/app", "", "", "docker.io/localhost/app",
       "docker.io/localhost/app"},
      {"docker.io/library/x.y/app", "docker.io", "library/x.y/app", "", "",
       "docker.io/library/x.y/app", "library/x.y/app"},
      // reference_test.go TestReferenceParse, through normalization
      {"test_com", "docker.io", "library/test_com", "", "", "docker.io/library/test_com",
       "test_com"},
      {"test.com:tag", "docker.io", "library/test.com", "tag", "", "docker.io/library/test.com:tag",
       "test.com:tag"},
      {"test.com:5000", "docker.io", "library/test.com", "5000", "",
       "docker.io/library/test.com:5000", "test.com:5000"},
      {"test.com/repo:tag", "test.com", "repo", "tag", "", "test.com/repo:tag",
       "test.com/repo:tag"},
      {"test:5000/repo@" + kF256, "test:5000", "repo", "", kF256, "test:5000/repo@" + kF256,
       "test:5000/repo@" + kF256},
      {"test:5000/repo:tag@" + kF256, "test:5000", "repo", "tag", kF256,
       "test:5000/repo:tag@" + kF256, "test:5000/repo:tag@" + kF256},
      {"lowercase:Uppercase", "docker.io", "library/lowercase", "Uppercase", "",
       "docker.io/library/lowercase:Uppercase", "lowercase:Uppercase"},
      {"sub-dom1.foo.com/bar/baz/quux:some-long-tag", "sub-dom1.foo.com", "bar/baz/quux",
       "some-long-tag", "", "sub-dom1.foo.com/bar/baz/quux:some-long-tag",
       "sub-dom1.foo.com/bar/baz/quux:some-long-tag"},
      {"b.gcr.io/test.example.com/my-app:test.example.com", "b.gcr.io", "test.example.com/my-app",
       "test.example.com", "", "b.gcr.io/test.example.com/my-app:test.example.com",
       "b.gcr.io/test.example.com/my-app:test.example.com"},
      {"xn--7o8h.com/myimage:xn--7o8h.com@" + kD512, "xn--7o8h.com", "myimage", "xn--7o8h.com",
       kD512, "xn--7o8h.com/myimage:xn--7o8h.com@" + kD512,
       "xn--7o8h.com/myimage:xn--7o8h.com@" + kD512},
      {"foo_bar.com:8080", "docker.io", "library/foo_bar.com", "8080", "",
       "docker.io/library/foo_bar.com:8080", "foo_bar.com:8080"},
      {"foo/foo_bar.com:8080", "docker.io", "foo/foo_bar.com", "8080", "",
       "docker.io/foo/foo_bar.com:8080", "foo/foo_bar.com:8080"},
      {"192.168.1.1:5000/repo:5050", "192.168.1.1:5000", "repo", "5050", "",
       "192.168.1.1:5000/repo:5050", "192.168.1.1:5000/repo:5050"},
      {"[2001:db8::1]/repo", "[2001:db8::1]", "repo", "", "", "[2001:db8::1]/repo",
       "[2001:db8::1]/repo"},
      {"[2001:db8:1:2:3:4:5:6]/repo:tag", "[2001:db8:1:2:3:4:5:6]", "repo", "tag", "",
       "[2001:db8:1:2:3:4:5:6]/repo:tag", "[2001:db8:1:2:3:4:5:6]/repo:tag"},
      {"[2001:db8::]:5000/repo", "[2001:db8::]:5000", "repo", "", "", "[2001:db8::]:5000/repo",
       "[2001:db8::]:5000/repo"},
      {"[::1]:5000/repo", "[::1]:5000", "repo", "", "", "[::1]:5000/repo", "[::1]:5000/repo"},
      {"[2001:db8::1]:5000/repo:tag@" + kF256, "[2001:db8::1]:5000", "repo", "tag", kF256,
       "[2001:db8::1]:5000/repo:tag@" + kF256, "[2001:db8::1]:5000/repo:tag@" + kF256},
      // berth's own: localhost, common registries, ECR, limits
      {"localhost/foo", "localhost", "foo", "", "", "localhost/foo", "localhost/foo"},
      {"localhost:5000/team/app:v2", "localhost:5000", "team/app", "v2", "",
       "localhost:5000/team/app:v2", "localhost:5000/team/app:v2"},
      {"localhost", "docker.io", "library/localhost", "", "", "docker.io/library/localhost",
       "localhost"},
      {"localhost:5000", "docker.io", "library/localhost", "5000", "",
       "docker.io/library/localhost:5000", "localhost:5000"},
      {"ghcr.io/owner/app:1.2.3", "ghcr.io", "owner/app", "1.2.3", "", "ghcr.io/owner/app:1.2.3",
       "ghcr.io/owner/app:1.2.3"},
      {"registry.gitlab.com/group/sub/project:v1", "registry.gitlab.com", "group/sub/project", "v1",
       "", "registry.gitlab.com/group/sub/project:v1", "registry.gitlab.com/group/sub/project:v1"},
      {"123456789012.dkr.ecr.us-east-1.amazonaws.com/app:1",
       "123456789012.dkr.ecr.us-east-1.amazonaws.com", "app", "1", "",
       "123456789012.dkr.ecr.us-east-1.amazonaws.com/app:1",
       "123456789012.dkr.ecr.us-east-1.amazonaws.com/app:1", true},
      {"123456789012.dkr.ecr-fips.us-gov-west-1.amazonaws.com/team/app",
       "123456789012.dkr.ecr-fips.us-gov-west-1.amazonaws.com", "team/app", "", "",
       "123456789012.dkr.ecr-fips.us-gov-west-1.amazonaws.com/team/app",
       "123456789012.dkr.ecr-fips.us-gov-west-1.amazonaws.com/team/app", true},
      {"123456789012.dkr.ecr.cn-north-1.amazonaws.com.cn/app",
       "123456789012.dkr.ecr.cn-north-1.amazonaws.com.cn", "app", "", "",
       "123456789012.dkr.ecr.cn-north-1.amazonaws.com.cn/app",
       "123456789012.dkr.ecr.cn-north-1.amazonaws.com.cn/app", true},
      {"public.ecr.aws/nginx/nginx:1.25", "public.ecr.aws", "nginx/nginx", "1.25", "",
       "public.ecr.aws/nginx/nginx:1.25", "public.ecr.aws/nginx/nginx:1.25"},
      {"nginx:" + tag128, "docker.io", "library/nginx", tag128, "",
       "docker.io/library/nginx:" + tag128, "nginx:" + tag128},
      {"nginx:_private", "docker.io", "library/nginx", "_private", "",
       "docker.io/library/nginx:_private", "nginx:_private"},
      {long_path, "docker.io", long_path, "", "", "docker.io/" + long_path, long_path},
      {"quay.io/org/app@" + kD384, "quay.io", "org/app", "", kD384, "quay.io/org/app@" + kD384,
       "quay.io/org/app@" + kD384},
      {"example.com:5000", "docker.io", "library/example.com", "5000", "",
       "docker.io/library/example.com:5000", "example.com:5000"},
      {"a.b-c.d/x__y.z/w--v", "a.b-c.d", "x__y.z/w--v", "", "", "a.b-c.d/x__y.z/w--v",
       "a.b-c.d/x__y.z/w--v"},
      {"localhost:99999/app", "localhost:99999", "app", "", "", "localhost:99999/app",
       "localhost:99999/app"},
  };
}

std::vector<Invalid> invalid_cases() {
  // Reasons name the part and a 1-based position in the submitted text; they never quote it.
  return {
      {"", "image_ref: is empty"},
      {kIdentifier, "64-byte hexadecimal"},
      // normalize_test.go invalid names
      {"https://github.com/docker/docker", "registry host at positions 1-6 is not a valid host"},
      {"docker/Docker", "repository path must be lowercase (uppercase letter at position 8)"},
      {"-docker", "repository path component at positions 1-7 must start and end"},
      {"-docker/docker", "repository path component at positions 1-7"},
      {"-docker.io/docker/docker", "registry host at positions 1-10"},
      {"docker///docker", "empty component at position 8"},
      {"docker.io/docker/Docker", "uppercase letter at position 18"},
      {"docker.io/docker///docker", "empty component at position 18"},
      {"[fc00::1]", "character that is not allowed at position 1"},
      {"[fc00::1]:5000", "character that is not allowed at position 1"},
      {"fc00::1:5000/debian", "registry host at positions 1-12"},
      {"[fe80::1%eth0]:5000/debian", "registry host at positions 1-19"},
      {"[2001:db8:3:4::192.0.2.33]:5000/debian", "registry host"},
      {"docker-/docker", "repository path component at positions 1-7"},
      {"-docker-/docker", "repository path component at positions 1-8"},
      {"____/____", "repository path component at positions 1-4"},
      {"_docker/_docker", "repository path component at positions 1-7"},
      // A '.' makes the first segment a host, so these fail as hosts.
      {"dock..er/docker", "registry host at positions 1-8"},
      {"dock_.er/docker", "registry host at positions 1-8"},
      {"dock-.er/docker", "registry host at positions 1-8"},
      {"docker/", "empty component at position 8"},
      {repeat("this_is_not_a_valid_namespace_because_its_lenth_is_greater_than_255_", 4) +
           "x/docker",
       "repository path is longer than 255 characters (280"},
      // reference_test.go, through normalization
      {":justtag", "empty component at position 1"},
      {"@" + kF256, "empty component at position 1"},
      {"repo@sha256:" + std::string(34, 'f'), "digest algorithm sha256 requires 64 hex"},
      {"validname@invaliddigest:" + std::string(64, 'f'),
       "digest algorithm at positions 11-23 is not supported"},
      {"Uppercase:tag", "repository path must be lowercase (uppercase letter at position 1)"},
      {"test:5000/Uppercase/lowercase:tag", "uppercase letter at position 11"},
      {"domain/" + std::string(256, 'a') + ":tag", "longer than 255 characters (263"},
      {repeat("a/", 128) + "a:tag", "longer than 255 characters (257"},
      {"aa/asdf$$^/aa", "character that is not allowed at position 8"},
      {"[2001:db8::1]", "character that is not allowed at position 1"},
      {"[2001:db8::1]:5000", "character that is not allowed at position 1"},
      {"[2001:db8::1]:tag", "character that is not allowed at position 1"},
      {"[fe80::1%eth0]:5000/repo", "registry host"},
      {"[fe80::1%@invalidzone]:5000/repo", "registry host"},
      // tags
      {"nginx:t" + std::string(128, 'g'), "tag is longer than 128 characters (129)"},
      {"nginx:-bad", "tag at position 7 must start with"},
      {"nginx:.bad", "tag at position 7 must start with"},
      {"nginx:a:b", "tag has a character that is not allowed at position 8"},
      {"nginx:", "tag after ':' at position 6 is empty"},
      {"nginx:1.0/x", "registry host at positions 1-9"},
      {"foo/bar:tag/baz", "tag has a character that is not allowed at position 12"},
      {"nginx:tag@", "digest after '@' at position 10 must have the form <algorithm>:<hex>"},
      // digests
      {"nginx@", "digest after '@' at position 6 must have the form"},
      {"nginx@sha256", "must have the form <algorithm>:<hex>"},
      {"nginx@sha256:abc", "digest algorithm sha256 requires 64 hex characters, got 3"},
      {"nginx@sha256:" + std::string(65, 'a'), "requires 64 hex characters, got 65"},
      {"nginx@sha512:" + std::string(64, 'a'), "digest algorithm sha512 requires 128"},
      {"nginx@sha256:" + std::string(64, 'F'),
       "digest must use lowercase hex (uppercase letter at position 14)"},
      // Upstream checks everything before the first ':' for uppercase, digest included.
      {"nginx@SHA256:" + std::string(64, 'f'),
       "digest must be lowercase (uppercase letter at position 7)"},
      {"a.io/nginx:v1@SHA256:" + std::string(64, 'f'),
       "digest algorithm at positions 15-20 is not supported"},
      {"nginx@md5:" + std::string(32, 'a'), "digest algorithm at positions 7-9 is not supported"},
      {"nginx@1sha:" + std::string(32, 'a'), "digest algorithm at positions 7-10 is invalid"},
      {"nginx@sha256:" + std::string(64, 'g'), "character that is not hex at position 14"},
      {"nginx@" + kF256 + "@" + kF256, "character that is not hex at position 78"},
      {"nginx@" + std::string(40, 'a'), "must have the form <algorithm>:<hex>"},
      // hosts
      {"my_registry.example.com/app", "registry host at positions 1-23"},
      {"localhost:abc/foo", "registry host at positions 1-13"},
      {"example.com:/foo", "registry host at positions 1-12"},
      {"ex-.com/foo", "registry host at positions 1-7"},
      {"[]:5000/foo", "registry host at positions 1-7"},
      {"index.docker.io/-x", "repository path component at positions 17-18"},
      {"Foo_x/bar", "repository path must be lowercase (uppercase letter at position 1)"},
      // paths
      {"FOO", "repository path must be lowercase (uppercase letter at position 1)"},
      {"/foo", "empty component at position 1"},
      {"docker.io/", "empty component at position 11"},
      {"a/b/../c", "repository path component at positions 5-6"},
      // bytes no part of a reference allows
      {"foo bar", "contains a space at position 4"},
      {"ghcr.io/acme/app :1", "contains a space at position 17"},
      {"foo\n", "contains a control character at position 4"},
      {"\xc3\xb1/foo", "contains a non-ASCII byte at position 1"},
  };
}

void check_valid(const Valid& c) {
  INFO("input: " << c.input);
  auto r = parse_image_ref(c.input);
  REQUIRE(r.ok());
  const ImageRef& ref = r.value();
  CHECK(ref.registry_host == c.host);
  CHECK(ref.repository == c.repository);
  CHECK(ref.tag == c.tag);
  CHECK(ref.digest == c.digest);
  CHECK(ref.ecr == c.ecr);
  CHECK(ref.name() == c.host + "/" + c.repository);
  CHECK(ref.normalized() == c.normalized);
  CHECK(ref.familiar() == c.familiar);
  if (c.host == "docker.io") {
    CHECK(ref.auth_keys() == std::vector<std::string>{"docker.io", "https://index.docker.io/v1/"});
  } else {
    CHECK(ref.auth_keys() == std::vector<std::string>{c.host});
  }
  // The normalized form is a fixed point: parsing it again yields the same reference.
  auto again = parse_image_ref(ref.normalized());
  REQUIRE(again.ok());
  CHECK(again.value() == ref);
}

}  // namespace

TEST_CASE("Valid references parse to the host, path, tag and digest upstream reports",
          "[image_ref]") {
  const auto cases = valid_cases();
  REQUIRE(cases.size() >= 80);
  for (const auto& c : cases) check_valid(c);
}

TEST_CASE("Invalid references are rejected with a reason naming the component and rule",
          "[image_ref]") {
  const auto cases = invalid_cases();
  REQUIRE(cases.size() >= 60);
  for (const auto& c : cases) {
    INFO("input: " << c.input);
    auto r = parse_image_ref(c.input);
    REQUIRE_FALSE(r.ok());
    CHECK(r.error().code == ErrorCode::kValidation);
    CHECK(r.error().field == "image_ref");
    CHECK(r.error().message.rfind("image_ref: ", 0) == 0);
    CHECK_THAT(r.error().message, Catch::Matchers::Contains(c.reason));
    CHECK(r.error().message.find('\n') == std::string::npos);
  }
}

// distribution/reference v0.6.0 reference.go Parse: `len(repo.path) > RepositoryNameTotalLengthMax`
// (the domain was excluded in commit aaca75e, "Exclude domain from name length check").
TEST_CASE("The 255-character limit counts the repository path, not the registry host",
          "[image_ref]") {
  struct Boundary {
    std::string input;
    bool ok;
    std::size_t path_length;
  };
  const std::string p255 = "x/" + std::string(253, 'a');
  const std::string p256 = p255 + "a";
  const std::vector<Boundary> cases = {
      // Docker Hub, host implied
      {p255, true, 255},
      {p256, false, 256},
      // Docker Hub official image: "library/" is part of the path after normalization
      {std::string(247, 'a'), true, 255},
      {std::string(248, 'a'), false, 256},
      // an explicit host of any length does not count
      {"docker.io/" + p255, true, 255},
      {"docker.io/" + p256, false, 256},
      {"ghcr.io/" + p255, true, 255},
      {"ghcr.io/" + p256, false, 256},
      {"registry.example.com:5000/" + p255 + ":v1", true, 255},
      {"registry.example.com:5000/" + p256 + ":v1", false, 256},
      {"127.0.0.1:5000/" + p255 + "@" + kD256, true, 255},
      {"127.0.0.1:5000/" + p256 + "@" + kD256, false, 256},
      // upstream's own cases
      {"example.com/" + std::string(255, 'a') + ":tag", true, 255},
      {"domain/" + std::string(256, 'a') + ":tag", false, 263},
  };
  for (const auto& c : cases) {
    INFO("input length " << c.input.size() << ", path " << c.path_length);
    auto r = parse_image_ref(c.input);
    if (c.ok) {
      REQUIRE(r.ok());
      CHECK(r->repository.size() == c.path_length);
      CHECK(r->name().size() > 255);  // host + path beyond the old (wrong) limit is fine
    } else {
      REQUIRE_FALSE(r.ok());
      CHECK_THAT(r.error().message,
                 Catch::Matchers::Contains("repository path is longer than 255 characters (" +
                                           std::to_string(c.path_length)));
    }
  }
  // The tag and digest do not count towards the path.
  auto tagged = parse_image_ref("ghcr.io/" + p255 + ":" + std::string(128, 't') + "@" + kD256);
  REQUIRE(tagged.ok());
  CHECK(tagged->tag.size() == 128);
}

TEST_CASE("Error messages name the part and position, never the submitted text", "[image_ref]") {
  const std::string secretish = "https://bot:ghp_s3cretTOKEN@ghcr.io/acme/app:1";
  auto r = parse_image_ref(secretish);
  REQUIRE_FALSE(r.ok());
  CHECK(r.error().message.find("s3cret") == std::string::npos);
  CHECK(r.error().message.find("bot") == std::string::npos);
  for (const auto& c : invalid_cases()) {
    if (c.input.size() < 4) continue;
    auto e = parse_image_ref(c.input);
    REQUIRE_FALSE(e.ok());
    INFO(e.error().message);
    CHECK(e.error().message.find(c.input) == std::string::npos);
  }
}

TEST_CASE("A tag of 128 characters is accepted and one of 129 is rejected", "[image_ref]") {
  REQUIRE(parse_image_ref("app:" + std::string(128, 'x')).ok());
  auto r = parse_image_ref("app:" + std::string(129, 'x'));
  REQUIRE_FALSE(r.ok());
  CHECK_THAT(r.error().message, Catch::Matchers::Contains("tag"));
  CHECK_THAT(r.error().message, Catch::Matchers::Contains("longer than 128 characters"));
}

TEST_CASE("Docker Hub references get both auth-file keys and other hosts exactly one",
          "[image_ref]") {
  CHECK(parse_image_ref("nginx")->auth_keys() ==
        std::vector<std::string>{"docker.io", "https://index.docker.io/v1/"});
  CHECK(parse_image_ref("index.docker.io/org/app")->auth_keys() ==
        std::vector<std::string>{"docker.io", "https://index.docker.io/v1/"});
  CHECK(parse_image_ref("ghcr.io/o/r")->auth_keys() == std::vector<std::string>{"ghcr.io"});
  CHECK(parse_image_ref("127.0.0.1:5000/r")->auth_keys() ==
        std::vector<std::string>{"127.0.0.1:5000"});
  CHECK(parse_image_ref("[::1]:5000/r")->auth_keys() == std::vector<std::string>{"[::1]:5000"});
}

TEST_CASE("pinned replaces the tag and digest with the resolved digest", "[image_ref]") {
  auto r = parse_image_ref("ghcr.io/o/app:v1");
  REQUIRE(r.ok());
  CHECK(r->pinned(kD256) == "ghcr.io/o/app@" + kD256);
  auto both = parse_image_ref("nginx:1.25@" + kF256);
  REQUIRE(both.ok());
  CHECK(both->pinned(kD256) == "docker.io/library/nginx@" + kD256);
}

TEST_CASE("with_default_tag adds latest only when neither tag nor digest was given",
          "[image_ref]") {
  CHECK(parse_image_ref("nginx")->with_default_tag() == "docker.io/library/nginx:latest");
  CHECK(parse_image_ref("nginx:1.25")->with_default_tag() == "docker.io/library/nginx:1.25");
  CHECK(parse_image_ref("nginx@" + kD256)->with_default_tag() ==
        "docker.io/library/nginx@" + kD256);
  CHECK(parse_image_ref("localhost:5000/a:b@" + kD256)->with_default_tag() ==
        "localhost:5000/a:b@" + kD256);
  // The parse itself never invents a tag.
  CHECK(parse_image_ref("nginx")->tag.empty());
}

TEST_CASE("ECR hosts are recognised with and without FIPS and in the China partition",
          "[image_ref]") {
  CHECK(is_ecr_host("123456789012.dkr.ecr.us-east-1.amazonaws.com"));
  CHECK(is_ecr_host("123456789012.dkr.ecr-fips.us-gov-west-1.amazonaws.com"));
  CHECK(is_ecr_host("123456789012.dkr.ecr.cn-northwest-1.amazonaws.com.cn"));
  CHECK(is_ecr_host("123456789012.DKR.ECR.EU-WEST-1.AMAZONAWS.COM"));
  CHECK_FALSE(is_ecr_host("12345678901.dkr.ecr.us-east-1.amazonaws.com"));    // 11 digits
  CHECK_FALSE(is_ecr_host("1234567890123.dkr.ecr.us-east-1.amazonaws.com"));  // 13 digits
  CHECK_FALSE(is_ecr_host("123456789012.dkr.ecr.us-east-1.amazonaws.com:443"));
  CHECK_FALSE(is_ecr_host("123456789012.dkr.ecr..amazonaws.com"));
  CHECK_FALSE(is_ecr_host("123456789012.dkr.ecr.us.east.amazonaws.com"));
  CHECK_FALSE(is_ecr_host("123456789012.dkr.ecr-gov.us-east-1.amazonaws.com"));
  CHECK_FALSE(is_ecr_host("public.ecr.aws"));
  CHECK_FALSE(is_ecr_host("123456789012.dkr.ecr.us-east-1.amazonaws.com.evil.example"));
  CHECK_FALSE(is_ecr_host("evil123456789012.dkr.ecr.us-east-1.amazonaws.com"));
  CHECK_FALSE(is_ecr_host(""));
}

TEST_CASE("Error messages for long and binary input stay short and on one line", "[image_ref]") {
  const std::string huge(100000, 'a');
  auto r = parse_image_ref("ghcr.io/" + huge + "$\r\n");
  REQUIRE_FALSE(r.ok());
  CHECK(r.error().message.size() < 400);
  CHECK(r.error().message.find('\n') == std::string::npos);
  CHECK(r.error().message.find('\r') == std::string::npos);
  CHECK_THAT(r.error().message,
             Catch::Matchers::Contains("contains a control character at position 100010"));
}

TEST_CASE("Very long inputs are handled in linear time without recursion", "[image_ref]") {
  // std::regex would overflow the stack on several of these.
  const std::vector<std::string> inputs = {
      std::string(1 << 20, 'a'),
      repeat("a/", 1 << 18) + "a",
      repeat("a-", 1 << 18) + "a",
      "example.com/" + repeat("a.", 1 << 18) + "a",
      "nginx:" + std::string(1 << 20, 't'),
      "nginx@sha256:" + std::string(1 << 20, 'f'),
      repeat("[", 1 << 18) + "/x",
  };
  for (const auto& in : inputs) {
    INFO("input length: " << in.size());
    auto r = parse_image_ref(in);
    REQUIRE_FALSE(r.ok());
    CHECK(r.error().code == ErrorCode::kValidation);
    CHECK(r.error().message.size() < 400);
  }
  // Upstream bounds neither the host nor the port, only the path: these are valid (and fail
  // later, at DNS), as they are for docker.
  for (const auto& in :
       {repeat("a.", 1 << 18) + "a/x", "localhost:" + std::string(1 << 20, '5') + "/x"}) {
    INFO("input length: " << in.size());
    auto r = parse_image_ref(in);
    REQUIRE(r.ok());
    CHECK(r->repository == "x");
  }
}

TEST_CASE("Random inputs always yield a reference that round-trips or a one-line reason",
          "[image_ref]") {
  // Tokens that steer the generator into every branch of the grammar.
  const std::vector<std::string> tokens = {"a",
                                           "b9",
                                           "Z",
                                           "docker.io",
                                           "index.docker.io",
                                           "localhost",
                                           "localhost:5000",
                                           "[::1]",
                                           "[fe80::1]:80",
                                           "ghcr.io",
                                           "/",
                                           "/",
                                           "/",
                                           ":",
                                           ":",
                                           "@",
                                           ".",
                                           "_",
                                           "__",
                                           "-",
                                           "--",
                                           "latest",
                                           "v1.2",
                                           "sha256:",
                                           kHex64,
                                           "sha512:",
                                           std::string(32, 'e'),
                                           "%",
                                           " ",
                                           std::string(1, '\0'),
                                           "\xff",
                                           "library/",
                                           "123456789012.dkr.ecr.us-east-1.amazonaws.com"};
  std::mt19937 rng(20240501);  // fixed seed: failures reproduce
  std::uniform_int_distribution<std::size_t> pick(0, tokens.size() - 1);
  std::uniform_int_distribution<int> count(0, 12);
  std::uniform_int_distribution<int> byte(0, 255);
  std::size_t accepted = 0;
  for (int i = 0; i < 30000; ++i) {
    std::string in;
    if (i % 5 == 0) {
      const int n = count(rng) * 4;
      for (int k = 0; k < n; ++k) in += static_cast<char>(byte(rng));
    } else {
      const int n = count(rng);
      for (int k = 0; k < n; ++k) in += tokens[pick(rng)];
    }
    auto r = parse_image_ref(in);
    if (r.ok()) {
      ++accepted;
      auto again = parse_image_ref(r->normalized());
      if (!again.ok() || !(again.value() == r.value())) {
        FAIL("normalized form does not round-trip for input: " << in);
      }
      if (r->registry_host.empty() || r->repository.empty()) {
        FAIL("accepted reference without host or path: " << in);
      }
    } else {
      const auto& e = r.error();
      if (e.code != ErrorCode::kValidation || e.field != "image_ref" ||
          e.message.rfind("image_ref: ", 0) != 0 || e.message.size() > 400 ||
          e.message.find_first_of(std::string("\n\r\0", 3)) != std::string::npos) {
        FAIL("bad error for input of " << in.size() << " bytes: " << e.message);
      }
    }
  }
  // The generator must exercise the success path too, or the round-trip check proves nothing.
  CHECK(accepted > 1000);
}
