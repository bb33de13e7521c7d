// The agents table: every agent that has connected, by name.
#include <string>
#include <vector>

#include "store/connection.h"

namespace berth::store {

using internal::Context;

Status SqliteStore::upsert_agent(const core::AgentRecord& agent) {
  return impl_->transaction(Context{}, [&](internal::Connection& db) -> Status {
    auto up = db.prepare(
        "INSERT INTO agents (name, zone, cert_fingerprint, last_seen) "
        "VALUES (:name, :zone, :cert_fingerprint, :last_seen) "
        "ON CONFLICT(name) DO UPDATE SET zone = excluded.zone, "
        "cert_fingerprint = excluded.cert_fingerprint, "
        "last_seen = excluded.last_seen");
    up.bind(":name", agent.name);
    up.bind(":zone", agent.zone);
    up.bind(":cert_fingerprint", agent.cert_fingerprint);
    up.bind(":last_seen", static_cast<std::int64_t>(agent.last_seen));
    up.exec();
    return Status::Ok();
  });
}

Result<std::vector<core::AgentRecord>> SqliteStore::list_agents() {
  return impl_->locked(
      Context{}, [](internal::Connection& db) -> Result<std::vector<core::AgentRecord>> {
        auto st = db.prepare(
            "SELECT name, zone, cert_fingerprint, last_seen "
            "FROM agents ORDER BY name");
        std::vector<core::AgentRecord> out;
        while (st.executeStep()) {
          out.push_back(core::AgentRecord{
              st.getColumn("name").getString(), st.getColumn("zone").getString(),
              st.getColumn("cert_fingerprint").getString(), st.getColumn("last_seen").getInt64()});
        }
        return out;
      });
}

}  // namespace berth::store
