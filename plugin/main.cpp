// kubectl-berth: the kubectl plugin for berth's AppServices (`kubectl berth history|rollback|
// version`). kubectl finds it on PATH by its name and runs it with the arguments after "berth";
// the environment (KUBECONFIG) is passed through, so it reads the same configuration kubectl
// would: --kubeconfig, then $KUBECONFIG, in-cluster, ~/.kube/config (kube/config.h), with
// --context and -n/--namespace on top.
//
// The composition root of the plugin: options, configuration, transport, then one command
// (commands.h). Exit status as kubectl's: 0 on success, 1 on any error (printed to stderr as
// "error: ..." or, for the API server's refusals, "Error from server (Reason): ...").
#include <iostream>
#include <memory>
#include <string>

#include <CLI/CLI.hpp>

#include "commands.h"
#include "common/clock.h"
#include "kube/config.h"
#include "kube/transport.h"

namespace {

using berth::ErrorCode;

constexpr const char* kVersion = BERTH_VERSION;

// Help texts as kubectl writes its own: a sentence, examples, options, usage.
constexpr const char* kGlobalOptions = R"TXT(
Global options:
    --context='':
	The name of the kubeconfig context to use

    --kubeconfig='':
	Path to the kubeconfig file to use for CLI requests.

    -n, --namespace='':
	If present, the namespace scope for this CLI request
)TXT";

constexpr const char* kRootHelp =
    R"TXT(Inspect and roll back berth AppServices (appservices.berth.dev).

 berth records one ControllerRevision per accepted change of an AppService; these commands read
that history and copy an earlier revision's spec back, like "kubectl rollout".

Available Commands:
  history       View the revision history of an AppService
  rollback      Roll an AppService back to an earlier revision
  version       Print the plugin's version

Usage:
  kubectl berth [command] [flags] [options]

Use "kubectl berth <command> --help" for more information about a given command.
)TXT";

constexpr const char* kHistoryHelp = R"TXT(View the revision history of an AppService.

 Lists the AppService's revisions, oldest first: the image the spec named, the digest berth
resolved for it, the state of its rollout and its age. The revision that serves now
(status.currentRevision) is marked "(current)".

Examples:
  # View the revisions of the AppService "billing"
  kubectl berth history billing

  # In another namespace
  kubectl berth history billing -n payments

Usage:
  kubectl berth history NAME [options]
)TXT";

constexpr const char* kRollbackHelp = R"TXT(Roll an AppService back to an earlier revision.

 Copies the spec recorded in a revision into the AppService, as "kubectl rollout undo" does for
a Deployment; berth then deploys that revision's recorded image digest. Fields absent from the
revision are removed from the spec. The change fails, and nothing is changed, if the AppService
was modified since it was read. Under GitOps (Argo CD, Flux) prefer reverting the commit: a
rollback here is drift that the next sync undoes.

Examples:
  # Roll back to the revision before the current one
  kubectl berth rollback billing

  # Roll back to revision 3
  kubectl berth rollback billing --to-revision=3

Options:
    --to-revision=0:
	The revision to roll back to. Default to 0 (the revision before the current one).

Usage:
  kubectl berth rollback NAME [--to-revision=N] [options]
)TXT";

constexpr const char* kVersionHelp = R"TXT(Print the version of the kubectl-berth plugin.

Examples:
  kubectl berth version

Usage:
  kubectl berth version [options]
)TXT";

// kubectl's wording for the API server's refusals, by the code status_error() mapped.
const char* server_reason(ErrorCode code) {
  switch (code) {
    case ErrorCode::kNotFound:
      return "NotFound";
    case ErrorCode::kConflict:
      return "Conflict";
    case ErrorCode::kPermissionDenied:
      return "Forbidden";
    case ErrorCode::kUnauthenticated:
      return "Unauthorized";
    case ErrorCode::kValidation:
      return "Invalid";
    default:
      return nullptr;
  }
}

int fail(const berth::Error& error, bool from_server) {
  const char* reason = from_server ? server_reason(error.code) : nullptr;
  if (reason != nullptr) {
    std::cerr << "Error from server (" << reason << "): " << error.message << "\n";
  } else {
    std::cerr << "error: " << error.message << "\n";
  }
  return 1;
}

struct Connection {
  std::unique_ptr<berth::kube::Transport> transport;
  std::string namespace_;
};

berth::Result<Connection> connect(const std::string& kubeconfig, const std::string& context,
                                  const std::string& namespace_flag) {
  berth::kube::LoadOptions load;
  load.kubeconfig = kubeconfig;
  load.context = context;
  auto config = berth::kube::load_config(load);
  if (!config) return config.take_error();
  Connection c;
  c.namespace_ = !namespace_flag.empty()              ? namespace_flag
                 : !config->default_namespace.empty() ? config->default_namespace
                                                      : "default";
  berth::kube::TransportOptions options;
  options.user_agent = std::string("kubectl-berth/") + kVersion;
  auto transport = berth::kube::make_transport(std::move(config.value()), options);
  if (!transport) return transport.take_error();
  c.transport = std::move(transport.value());
  return c;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app("kubectl berth");
  app.set_help_flag();  // the help texts above, not CLI11's
  bool help = false;
  std::string kubeconfig;
  std::string context;
  std::string namespace_;
  app.add_flag("-h,--help", help);
  app.add_option("--kubeconfig", kubeconfig);
  app.add_option("--context", context);
  app.add_option("-n,--namespace", namespace_);
  app.fallthrough();

  std::string name;
  std::int64_t to_revision = 0;
  auto* history = app.add_subcommand("history");
  history->add_option("NAME", name);
  history->fallthrough();
  auto* rollback = app.add_subcommand("rollback");
  rollback->add_option("NAME", name);
  rollback->add_option("--to-revision", to_revision)->check(CLI::NonNegativeNumber);
  rollback->fallthrough();
  auto* version = app.add_subcommand("version");
  version->fallthrough();

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    std::cerr << "error: " << e.what() << "\n";
    std::cerr << "See 'kubectl berth --help' for usage.\n";
    return 1;
  }

  const char* text = history->parsed()    ? kHistoryHelp
                     : rollback->parsed() ? kRollbackHelp
                     : version->parsed()  ? kVersionHelp
                                          : kRootHelp;
  if (help || app.get_subcommands().empty()) {
    std::cout << text;
    if (text != kRootHelp) std::cout << kGlobalOptions;
    return 0;
  }
  if (version->parsed()) {
    std::cout << "kubectl-berth version: v" << kVersion << "\n";
    return 0;
  }
  if (name.empty()) {
    std::cerr << "error: an AppService name is required\n"
              << "See 'kubectl berth " << (history->parsed() ? "history" : "rollback")
              << " --help' for usage.\n";
    return 1;
  }
  auto app_name = berth::plugin::app_name_argument(name);
  if (!app_name) return fail(app_name.error(), false);

  auto connection = connect(kubeconfig, context, namespace_);
  if (!connection) return fail(connection.error(), false);
  berth::Status status =
      history->parsed() ? berth::plugin::history(*connection->transport, connection->namespace_,
                                                 app_name.value(), berth::system_now(), std::cout)
                        : berth::plugin::rollback(*connection->transport, connection->namespace_,
                                                  app_name.value(), to_revision, std::cout);
  if (!status) {
    // The plugin's own refusals are kFailedPrecondition (commands.h); the rest came from the
    // server or the connection.
    return fail(status.error(), status.error().code != ErrorCode::kFailedPrecondition);
  }
  return 0;
}
