// berth's status page: reads the JSON API as the signed-in account and shows what it says.
// Read-only: it only ever sends GET. Everything that comes from the API (app names, images,
// deploy logs, registry errors) is inserted as text (textContent, Text nodes, setAttribute of
// inert attributes), never parsed as HTML: those strings come from users and registries.
'use strict';

(function () {
  const POLL_BUSY_MS = 1000;  // while something rolls out: progress moves
  const POLL_IDLE_MS = 3000;
  const BUSY_STATUSES = new Set(['Pending', 'PendingModification', 'Deleting']);

  // Succeeded revisions never change, so their number and digest are kept by id and a service's
  // deployments are read again only when its current revision changes.
  const revisions = new Map();  // revision id -> {number, digest}
  let timer = null;

  // --- building the page, as text only --------------------------------------------------------

  // el('td', {class: 'x', text: value}, child...): an element whose text and children are
  // Text nodes or elements; props other than class/text become attributes.
  function el(tag, props, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(props || {})) {
      if (value === undefined || value === null) continue;
      if (key === 'text') node.textContent = String(value);
      else if (key === 'class') node.className = String(value);
      else node.setAttribute(key, String(value));
    }
    for (const child of children) {
      if (child === undefined || child === null) continue;
      node.append(child);  // a string becomes a Text node
    }
    return node;
  }

  function str(value) {
    return typeof value === 'string' ? value : '';
  }

  function num(value) {
    return typeof value === 'number' && Number.isFinite(value) ? value : null;
  }

  // A link only for http(s) addresses: any other scheme (javascript:, data:) stays text.
  function endpoint(url) {
    const text = str(url);
    if (!text) return el('span', {class: 'muted', text: '—'});
    if (/^https?:\/\//i.test(text)) return el('a', {href: text, rel: 'noreferrer', text: text});
    return el('span', {text: text});
  }

  function duration(ms) {
    const v = num(ms);
    if (v === null) return '';
    if (v < 1000) return Math.round(v) + ' ms';
    if (v < 60000) return (v / 1000).toFixed(1) + ' s';
    const s = Math.round(v / 1000);
    return Math.floor(s / 60) + ' min ' + (s % 60) + ' s';
  }

  function bytes(n) {
    const v = num(n);
    if (v === null) return '';
    if (v < 1024) return v + ' B';
    if (v < 1024 * 1024) return (v / 1024).toFixed(1) + ' KiB';
    if (v < 1024 * 1024 * 1024) return (v / 1024 / 1024).toFixed(1) + ' MiB';
    return (v / 1024 / 1024 / 1024).toFixed(2) + ' GiB';
  }

  function when(rfc3339) {
    return str(rfc3339).replace('T', ' ');
  }

  function shortDigest(digest) {
    const d = str(digest);
    const colon = d.indexOf(':');
    return colon >= 0 && d.length > colon + 13 ? d.slice(0, colon + 13) + '…' : d;
  }

  // The `progress` object GET /app-services/{id} carries while a rollout runs (absent
  // otherwise): {step, layersDone, layersTotal, bytesDone, bytesTotal, updatedAt}.
  function progressOf(service) {
    const p = service && service.progress;
    return p && typeof p === 'object' && !Array.isArray(p) ? p : null;
  }

  function progressText(p) {
    const parts = [];
    if (str(p.step)) parts.push(str(p.step));
    if (num(p.layersTotal)) parts.push((num(p.layersDone) || 0) + '/' + p.layersTotal + ' layers');
    if (num(p.bytesTotal)) {
      parts.push(bytes(num(p.bytesDone) || 0) + ' of ' + bytes(p.bytesTotal));
    } else if (num(p.bytesDone) !== null) {
      parts.push(bytes(p.bytesDone));
    }
    return parts.join(' · ') || 'in progress';
  }

  function progressBox(p) {
    const box = el('div', {class: 'progress-box', 'data-role': 'progress'},
                   el('strong', {text: 'Rollout in progress: '}), progressText(p));
    const total = num(p.bytesTotal) || num(p.layersTotal);
    if (total) {
      const done = num(p.bytesTotal) ? num(p.bytesDone) : num(p.layersDone);
      const bar = el('progress', {max: total});
      bar.value = Math.min(done || 0, total);
      box.append(' ', bar);
    }
    if (str(p.updatedAt)) box.append(el('span', {class: 'muted', text: ' as of ' + when(p.updatedAt)}));
    return box;
  }

  function statusBadge(status) {
    const s = str(status) || 'Unknown';
    return el('span', {class: 'status status-' + s.toLowerCase(), 'data-role': 'status', text: s});
  }

  // --- reading the API ---------------------------------------------------------------------------

  async function api(path) {
    // location.origin, not a relative URL: a page opened as http://user:pass@host/ui/ would
    // resolve relative URLs with the credentials in them, and the Fetch API refuses those. The
    // browser sends the credentials it already holds for this origin.
    const response = await fetch(location.origin + path, {
      method: 'GET',
      credentials: 'same-origin',
      cache: 'no-store',
      headers: {Accept: 'application/json'},
    });
    if (response.status === 401) {
      throw new Error('Not signed in (401): reload the page and enter the account name and password.');
    }
    if (!response.ok) {
      let message = '';
      try {
        message = str((await response.json()).error);
      } catch (e) {
        // Not JSON (a proxy's page): the status says enough.
      }
      const error = new Error('The API answered ' + response.status + (message ? ': ' + message : ''));
      error.status = response.status;
      throw error;
    }
    return response.json();
  }

  function servicePath(id) {
    return '/app-services/' + encodeURIComponent(id);
  }

  async function learnRevisions(service) {
    const current = str(service.current_deployment_id);
    if (!current || revisions.has(current)) return;
    const body = await api(servicePath(service.id) + '/deployments');
    for (const r of body.deployments || []) {
      revisions.set(str(r.id), {number: num(r.revision), digest: str(r.image_digest)});
    }
  }

  // --- the list ----------------------------------------------------------------------------------

  function selectedId() {
    const m = /^#app=(.+)$/.exec(location.hash);
    if (!m) return '';
    try {
      return decodeURIComponent(m[1]);
    } catch (e) {
      return '';
    }
  }

  function serviceRow(service, selected) {
    const rev = revisions.get(str(service.current_deployment_id));
    const statusCell = el('td', null, statusBadge(service.status));
    const p = progressOf(service);
    if (p) statusCell.append(el('div', {class: 'progress-line', 'data-role': 'progress', text: progressText(p)}));
    if (str(service.last_error)) {
      statusCell.append(el('div', {class: 'error', 'data-role': 'last-error', text: str(service.last_error)}));
    }
    const digest = rev ? rev.digest : '';
    return el('tr', {'data-app-id': str(service.id), class: selected ? 'selected' : null},
      el('td', null, el('a', {href: '#app=' + encodeURIComponent(str(service.id)), 'data-role': 'open',
                              text: str(service.name)})),
      statusCell,
      el('td', {'data-role': 'revision', text: rev && rev.number !== null ? '#' + rev.number : '—'}),
      el('td', null, digest ? el('code', {title: digest, 'data-role': 'digest', text: shortDigest(digest)})
                            : el('span', {class: 'muted', text: '—'})),
      el('td', null, endpoint(service.url)),
      el('td', {class: 'muted', text: when(service.updated_at)}));
  }

  function renderList(services) {
    const table = document.getElementById('apps');
    const selected = selectedId();
    document.getElementById('loading').hidden = true;
    document.getElementById('no-apps').hidden = services.length > 0;
    table.hidden = services.length === 0;
    table.tBodies[0].replaceChildren(...services.map((s) => serviceRow(s, str(s.id) === selected)));
  }

  // --- one app's details -------------------------------------------------------------------------

  function fact(label, value) {
    return [el('dt', {text: label}), el('dd', null, value)];
  }

  function conditionsTable(conditions) {
    if (!Array.isArray(conditions) || conditions.length === 0) return null;
    return el('table', {class: 'conditions'},
      el('thead', null, el('tr', null, ...['Condition', 'Status', 'Reason', 'Message', 'Since'].map(
        (h) => el('th', {text: h})))),
      el('tbody', null, ...conditions.map((c) => el('tr', null,
        el('td', {text: str(c.type)}), el('td', {text: str(c.status)}), el('td', {text: str(c.reason)}),
        el('td', {text: str(c.message)}), el('td', {class: 'muted', text: when(c.last_transition_time)})))));
  }

  function stepsSummary(logs) {
    const timed = logs.filter((l) => num(l.duration_ms) !== null && str(l.status) !== 'info');
    if (timed.length === 0) return null;
    const total = timed.reduce((sum, l) => sum + l.duration_ms, 0);
    const parts = timed.map((l) => str(l.step) + ' ' + duration(l.duration_ms) +
                                   (str(l.status) === 'failed' ? ' (failed)' : ''));
    return el('p', {class: 'steps', 'data-role': 'steps',
                    text: 'Steps: ' + parts.join(' · ') + ' — total ' + duration(total)});
  }

  function logsTable(logs) {
    if (logs.length === 0) return el('p', {class: 'muted', text: 'No deploy log yet.'});
    return el('table', {class: 'logs', 'data-role': 'deploy-logs'},
      el('thead', null, el('tr', null, ...['Step', 'Result', 'Message', 'Detail', 'Started', 'Duration'].map(
        (h) => el('th', {text: h})))),
      el('tbody', null, ...logs.map((l) => el('tr', {class: 'log-' + str(l.status)},
        el('td', {text: str(l.step)}), el('td', {text: str(l.status)}), el('td', {text: str(l.message)}),
        el('td', {class: 'detail', text: str(l.detail)}), el('td', {class: 'muted', text: when(l.started_at)}),
        el('td', {class: 'num', text: duration(l.duration_ms)})))));
  }

  function revisionArticle(r, currentId) {
    const logs = Array.isArray(r.deploy_logs) ? r.deploy_logs : [];
    const state = str(r.state);
    const serving = str(r.id) === currentId;
    const title = el('h4', null, '#' + (num(r.revision) === null ? '?' : r.revision) + ' ',
      el('span', {class: 'state state-' + state, 'data-role': 'state', text: state}),
      serving ? ' ' : null,
      serving ? el('span', {class: 'serving', text: 'serving'}) : null,
      ' — ' + str(r.reason));
    const meta = el('p', {class: 'muted'},
      'created ' + when(r.created_at) + ' · image ', el('code', {text: str(r.image_ref)}),
      str(r.image_digest) ? ' · ' : null,
      str(r.image_digest) ? el('code', {'data-role': 'digest', text: str(r.image_digest)}) : null);
    const failures = logs.filter((l) => str(l.status) === 'failed');
    const failure = failures.length > 0
      ? el('div', {class: 'error', 'data-role': 'failure'}, 'Failed at ' + str(failures[0].step) + ': ' +
           str(failures[0].message) + (str(failures[0].detail) ? ' — ' + str(failures[0].detail) : ''))
      : null;
    const details = el('details', null, el('summary', {text: 'Deploy log (' + logs.length + ' entries)'}),
                       logsTable(logs));
    // Open where a person needs to read it: a failed or still running rollout.
    details.open = state === 'failed' || state === 'pending';
    return el('article', {class: 'revision rev-' + state, 'data-revision': num(r.revision)},
              title, meta, failure, stepsSummary(logs), details);
  }

  function renderDetail(service, deployments) {
    const section = document.getElementById('detail');
    const current = str(service.current_deployment_id);
    const rev = revisions.get(current);
    const dl = el('dl', {class: 'facts'},
      ...fact('Status', statusBadge(service.status)),
      ...fact('Current revision', el('span', {'data-role': 'revision',
        text: rev && rev.number !== null ? '#' + rev.number : current ? current : '—'})),
      ...fact('Digest', rev && rev.digest ? el('code', {'data-role': 'digest', text: rev.digest})
                                          : el('span', {class: 'muted', text: '—'})),
      ...fact('Endpoint', endpoint(service.url)),
      ...fact('Image', el('code', {text: str((service.app_config || {}).image_ref)})),
      ...fact('Agent', el('span', {text: str(service.agent) || '—'})),
      ...fact('Updated', el('span', {text: when(service.updated_at)})));
    const p = progressOf(service);
    section.replaceChildren(...[
      el('h2', null, 'App service ', el('span', {class: 'name', text: str(service.name)}),
         ' ', el('a', {href: '#', class: 'close', text: 'close'})),
      dl,
      str(service.last_error)
        ? el('div', {class: 'error-box', 'data-role': 'last-error'},
             el('strong', {text: 'Last error: '}), str(service.last_error))
        : null,
      p ? progressBox(p) : null,
      conditionsTable(service.conditions),
      el('h3', {text: 'Revisions'}),
      ...(deployments.length ? deployments.map((r) => revisionArticle(r, current))
                             : [el('p', {class: 'muted', text: 'No revisions.'})]),
    ].filter((node) => node !== null));
    section.hidden = false;
  }

  function hideDetail(message) {
    const section = document.getElementById('detail');
    if (message) {
      section.replaceChildren(el('p', {class: 'muted', text: message}));
      section.hidden = false;
    } else {
      section.replaceChildren();
      section.hidden = true;
    }
  }

  // --- the loop ----------------------------------------------------------------------------------

  function banner(message) {
    const b = document.getElementById('banner');
    b.textContent = message || '';
    b.hidden = !message;
  }

  async function refresh() {
    let busy = false;
    const list = await api('/app-services');
    const services = Array.isArray(list.app_services) ? list.app_services : [];
    for (const s of services) {
      await learnRevisions(s);
      busy = busy || BUSY_STATUSES.has(str(s.status)) || progressOf(s) !== null;
    }
    renderList(services);
    const id = selectedId();
    if (id) {
      try {
        const service = await api(servicePath(id));
        await learnRevisions(service);
        const body = await api(servicePath(id) + '/deployments?all=true');
        const deployments = Array.isArray(body.deployments) ? body.deployments : [];
        renderDetail(service, deployments);
        busy = busy || progressOf(service) !== null ||
               deployments.some((r) => str(r.state) === 'pending');
      } catch (e) {
        if (e.status !== 404) throw e;
        hideDetail('This app service does not exist (any more).');
      }
    } else {
      hideDetail('');
    }
    document.getElementById('updated').textContent = 'updated ' + new Date().toLocaleTimeString();
    return busy;
  }

  // One refresh at a time: a hash change during a refresh asks for another one right after.
  let running = false;
  let again = false;

  async function tick() {
    if (running) {
      again = true;
      return;
    }
    running = true;
    clearTimeout(timer);
    let busy = false;
    try {
      busy = await refresh();
      banner('');
    } catch (e) {
      banner(e && e.message ? e.message : String(e));
    }
    running = false;
    if (again) {
      again = false;
      tick();
      return;
    }
    timer = setTimeout(tick, busy && !document.hidden ? POLL_BUSY_MS : POLL_IDLE_MS);
  }

  window.addEventListener('hashchange', tick);
  tick();
})();
