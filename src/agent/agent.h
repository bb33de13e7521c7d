#pragma once
// Agent: ties the link to the Deployer. Every task received is acked at once; tasks run on one
// worker thread in arrival order (so one task at a time per app, and also one at a time
// overall: the rollouts of different apps run serially, which keeps podman and the 2 cores of
// a small VM from being oversubscribed). A task id already queued or running is only acked; a
// task id already applied is acked and answered with its recorded result (by the Deployer).
// Progress and TaskResult are sent through `send` from the worker thread.
//
// A second thread runs the Deployer's watch every `watch_every` and sends each AppStatus it
// returns; after hello() (a (re)connect) the next round re-sends every app that is not running,
// since statuses sent while the link was down were lost.
//
// Thread-safe: handle() may be called from the link's thread while the worker runs. stop()
// finishes the running task and drops queued ones (the controller re-sends what it has not
// seen a result for: delivery is at-least-once).
#include <chrono>
#include <condition_variable>
#include <deque>
#include <functional>
#include <mutex>
#include <set>
#include <string>
#include <thread>

#include "agent/deployer.h"
#include "agentlink/messages.h"

namespace berth::agent {

class Agent {
 public:
  struct Options {
    std::string name;
    std::string zone;
    std::string version = "0.1.0";
    // How often the watch round runs (each app is checked at its own health interval). Zero:
    // no watch thread (unit tests call Deployer::watch themselves).
    std::chrono::milliseconds watch_every{0};
  };
  using Sender = std::function<void(agentlink::Message)>;

  Agent(Options options, Deployer& deployer, Sender send);
  ~Agent();
  Agent(const Agent&) = delete;
  Agent& operator=(const Agent&) = delete;

  // Reconciles with the runtime (see Deployer::reconcile) and starts the worker.
  Status start();
  // The full observed state, sent on every (re)connect.
  agentlink::Hello hello();
  // A message from the controller. Only DeployTask, RestartTask and RemoveTask are acted on.
  void handle(agentlink::Message message);
  // Blocks until the queue is empty and no task runs (tests, graceful stop).
  void wait_idle();
  void stop();

 private:
  void run();
  void watch_loop();
  static std::string task_id_of(const agentlink::Message& m);

  Options options_;
  Deployer& deployer_;
  Sender send_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<agentlink::Message> queue_;  // guarded by mu_
  std::set<std::string> pending_ids_;     // queued or running; guarded by mu_
  bool busy_ = false;
  bool stopping_ = false;
  std::thread worker_;
  std::thread watcher_;
};

}  // namespace berth::agent
