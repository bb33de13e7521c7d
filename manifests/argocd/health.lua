-- Argo CD health check for berth.dev/AppService (Lua 5.1). Install it under
-- resource.customizations.health.berth.dev_AppService in argocd-cm (docs/kubernetes.md).
-- Healthy: the controller has seen the current spec and the Ready condition is True.
-- Degraded: phase Failed, the Degraded condition True, or the credentials refused (the user must
-- act: berth keeps the current revision serving but will not deploy the new spec).
-- Otherwise Progressing (including while the AppService is being deleted).
local hs = {}
hs.status = "Progressing"
hs.message = "Waiting for berth to report status"
if obj.status == nil then
  return hs
end
if obj.metadata ~= nil and obj.metadata.deletionTimestamp ~= nil then
  hs.message = "Deleting: berth is removing the app from its agent"
  return hs
end
local generation = obj.metadata and obj.metadata.generation
local observed = obj.status.observedGeneration
if generation ~= nil and (observed == nil or observed < generation) then
  hs.message = "Waiting for berth to observe generation " .. tostring(generation)
  return hs
end
local ready, degraded, progressing, credentials = nil, nil, nil, nil
if obj.status.conditions ~= nil then
  for _, c in ipairs(obj.status.conditions) do
    if c.type == "Ready" then ready = c end
    if c.type == "Degraded" then degraded = c end
    if c.type == "Progressing" then progressing = c end
    if c.type == "CredentialsResolved" then credentials = c end
  end
end
if credentials ~= nil and credentials.status == "False" then
  hs.status = "Degraded"
  hs.message = credentials.message or "The registry credentials were refused"
  return hs
end
if obj.status.phase == "Failed" or (degraded ~= nil and degraded.status == "True") then
  hs.status = "Degraded"
  local c = degraded or ready
  hs.message = (c and c.message) or obj.status.lastError or "The deploy failed"
  return hs
end
if ready ~= nil and ready.status == "True" and obj.status.phase == "Running" then
  hs.status = "Healthy"
  hs.message = ready.message or "Running"
  return hs
end
if progressing ~= nil and progressing.message ~= nil then
  hs.message = progressing.message
elseif ready ~= nil and ready.message ~= nil then
  hs.message = ready.message
end
return hs
