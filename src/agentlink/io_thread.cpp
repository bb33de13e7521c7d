#include "agentlink/io_thread.h"

#include <boost/asio/post.hpp>
#include <future>
#include <memory>

namespace berth::agentlink::detail {

namespace {
// How long shut_down() waits for the closes it posted before it stops the I/O thread anyway.
constexpr auto kStopGrace = std::chrono::seconds(2);
}  // namespace

void IoThread::start() {
  work_.emplace(ioc_->get_executor());
  thread_ = std::thread([this] { ioc_->run(); });
}

void IoThread::shut_down(std::function<void()> closes, std::function<void()> release) {
  if (!ioc_) return;
  if (thread_.joinable()) {
    auto done = std::make_shared<std::promise<void>>();
    auto future = done->get_future();
    boost::asio::post(*ioc_, [closes = std::move(closes), done] {
      if (closes) closes();
      done->set_value();
    });
    future.wait_for(kStopGrace);
    work_.reset();
    ioc_->stop();
    thread_.join();
  }
  if (release) release();
  ioc_.reset();
}

}  // namespace berth::agentlink::detail
