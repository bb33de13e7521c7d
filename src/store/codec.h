#pragma once
// JSON text for the structured columns of the store (app_config, env, custom_domains, health,
// conditions, deploy_logs). Pure functions: no I/O. Decoding never throws; text that is not
// what the store wrote comes back as kDataLoss (the database was altered behind berth's back).
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.h"
#include "core/types.h"

namespace berth::store {

std::string encode_config(const core::AppConfig& config);
Result<core::AppConfig> decode_config(std::string_view text);

std::string encode_env(const std::map<std::string, std::string>& env);
Result<std::map<std::string, std::string>> decode_env(std::string_view text);

std::string encode_strings(const std::vector<std::string>& values);
Result<std::vector<std::string>> decode_strings(std::string_view text);

std::string encode_health(const core::HealthCheck& health);
Result<core::HealthCheck> decode_health(std::string_view text);

std::string encode_conditions(const std::vector<core::Condition>& conditions);
Result<std::vector<core::Condition>> decode_conditions(std::string_view text);

std::string encode_deploy_logs(const std::vector<core::DeployLogEntry>& logs);
Result<std::vector<core::DeployLogEntry>> decode_deploy_logs(std::string_view text);

}  // namespace berth::store
