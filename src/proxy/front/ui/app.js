// vcproxy's web view (/ui/): log in, choose a filter, and see every vCenter's tasks in
// one table kept live by the watch stream (GET /vcproxy/v1/tasks/watch, server-sent
// events).
//
// Rules this file keeps:
// * Task fields, vCenter names and error texts come from outside: they are written
//   with textContent (or as property values) only, never parsed as HTML.
// * The page's Content-Security-Policy allows no inline script or style: no event
//   handler attributes, no style attributes; classes and the `hidden` property only.
// * The session is an HttpOnly cookie the log-in sets (so EventSource, which cannot
//   send headers, is authenticated too); it never appears in a URL. The CSRF token
//   the log-in returns goes in X-CSRF-Token on every request that changes state.
'use strict';

(() => {
  /** What the services box holds at first: every service the simulator has. */
  const SERVICES = [
    'com.vmware.esx.settings.clusters.software',
    'com.vmware.esx.settings.hosts.software',
    'com.vmware.esx.settings.clusters.configuration',
    'com.vmware.vcenter.vm_template.library_items',
    'com.vmware.vcenter.ovf.library_item',
    'com.vmware.vcenter.namespace_management.clusters',
    'com.vmware.appliance.update',
  ];
  const STATUSES = ['PENDING', 'RUNNING', 'BLOCKED', 'SUCCEEDED', 'FAILED'];
  const ACTIVE = new Set(['PENDING', 'RUNNING', 'BLOCKED']);
  /** How long to wait before opening the stream again after the browser gave up. */
  const RETRY_MS = 3000;
  const ENDED = 'Your session has ended: log in again.';

  const $ = (id) => document.getElementById(id);

  const state = {
    user: null,
    csrf: null,
    /** Every vCenter the proxy fronts (GET /vcproxy/v1/vcenters). */
    vcenters: [],
    /** The filter in force: {services, status, vcenters}. */
    filter: null,
    /** vCenter name -> {ok, status, error}, from the stream. */
    health: new Map(),
    /** "vcenter\u0000task" -> {vcenter, task, info}. */
    tasks: new Map(),
    /** The same keys -> the table row showing that task. */
    rows: new Map(),
    /** Keys whose rows must be rebuilt at the next render. */
    dirty: new Set(),
    renderTimer: null,
    source: null,
    retryTimer: null,
    snapshots: 0,
  };

  // ---------------------------------------------------------------------------------
  // Small helpers
  // ---------------------------------------------------------------------------------

  /** A new element with a class and a text (set as text, never as HTML). */
  function el(tag, className, text) {
    const e = document.createElement(tag);
    if (className) e.className = className;
    if (text !== undefined && text !== null) e.textContent = String(text);
    return e;
  }

  function show(id, visible) {
    $(id).hidden = !visible;
  }

  function setText(id, text) {
    const e = $(id);
    e.textContent = text || '';
    e.hidden = !text;
  }

  /** A same-origin JSON request; never throws on an HTTP status (status 0: no answer). */
  async function call(method, path, body) {
    const headers = { Accept: 'application/json' };
    const init = { method, headers, credentials: 'same-origin', cache: 'no-store' };
    if (body !== undefined) {
      headers['Content-Type'] = 'application/json';
      init.body = JSON.stringify(body);
    }
    if (method !== 'GET' && state.csrf) headers['X-CSRF-Token'] = state.csrf;
    let resp;
    try {
      resp = await fetch(path, init);
    } catch (e) {
      return { status: 0, ok: false, data: null };
    }
    let data = null;
    if ((resp.headers.get('Content-Type') || '').includes('json')) {
      try {
        data = await resp.json();
      } catch (e) {
        data = null;
      }
    }
    return { status: resp.status, ok: resp.ok, data };
  }

  /**
   * The text of an error body: the default_message of each vAPI message joined
   * (`/rest`: {type, value: {messages}}; `/api`: {error_type, messages}), or a plain
   * {error: "..."} or string.
   */
  function errorText(err) {
    if (err === null || err === undefined) return '';
    if (typeof err !== 'object') return String(err);
    if (typeof err.error === 'string') return err.error;
    const body = err.value && typeof err.value === 'object' ? err.value : err;
    const messages = Array.isArray(body.messages) ? body.messages : [];
    const text = messages
      .map((m) => (m && typeof m.default_message === 'string' ? m.default_message : ''))
      .filter(Boolean)
      .join(' ');
    return text || body.error_type || err.type || '';
  }

  /** vCenter's ISO-8601 UTC time as local [`YYYY-MM-DD`, `HH:MM:SS`]. */
  function formatTime(iso) {
    if (!iso) return null;
    const d = new Date(iso);
    if (Number.isNaN(d.getTime())) return [String(iso)];
    const p = (n) => String(n).padStart(2, '0');
    return [`${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())}`,
      `${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}`];
  }

  function str(v) {
    return typeof v === 'string' ? v : v === null || v === undefined ? '' : String(v);
  }

  // ---------------------------------------------------------------------------------
  // Log-in and log-out
  // ---------------------------------------------------------------------------------

  function showLogin(message) {
    stopWatch();
    state.user = null;
    state.csrf = null;
    state.filter = null;
    clearTasks();
    show('app-view', false);
    show('conn', false);
    show('who', false);
    show('logout', false);
    show('login-view', true);
    setText('login-error', message);
    $('login-password').value = '';
    $('login-user').focus();
  }

  async function login(event) {
    event.preventDefault();
    const button = $('login-submit');
    button.disabled = true;
    setText('login-error', '');
    const r = await call('POST', '/ui/login', {
      username: $('login-user').value,
      password: $('login-password').value,
    });
    button.disabled = false;
    if (r.ok && r.data && r.data.csrf) {
      state.user = str(r.data.user);
      state.csrf = str(r.data.csrf);
      $('login-password').value = '';
      await enterApp();
      return;
    }
    const why = r.data && errorText(r.data);
    setText('login-error', why || (r.status ? `Log-in failed (HTTP ${r.status}).`
      : 'The proxy cannot be reached.'));
  }

  async function logout() {
    const r = await call('POST', '/ui/logout');
    if (r.ok || r.status === 401) {
      showLogin('');
      return;
    }
    const s = await call('GET', '/ui/session');
    if (s.status === 401) {
      showLogin('');
      return;
    }
    setText('filter-error', `Log-out failed (HTTP ${r.status || 'no answer'}).`);
  }

  // ---------------------------------------------------------------------------------
  // The filter
  // ---------------------------------------------------------------------------------

  function checkbox(container, value, label, checked) {
    const l = el('label', 'check');
    const box = el('input');
    box.type = 'checkbox';
    box.value = value;
    box.checked = checked;
    l.append(box, el('span', null, label));
    container.append(l);
  }

  function checkedValues(id) {
    return Array.from($(id).querySelectorAll('input[type=checkbox]'))
      .filter((b) => b.checked)
      .map((b) => b.value);
  }

  function buildStatusChecks(wanted) {
    const box = $('f-status');
    box.replaceChildren();
    for (const s of STATUSES) checkbox(box, s, s, !wanted || wanted.includes(s));
  }

  function buildVcenterChecks(wanted) {
    const box = $('f-vcenters');
    box.replaceChildren();
    const any = wanted && state.vcenters.some((v) => wanted.includes(v));
    for (const v of state.vcenters) checkbox(box, v, v, !any || wanted.includes(v));
    if (!state.vcenters.length) box.append(el('span', 'muted', 'none'));
  }

  /**
   * The filter is kept in the page's fragment (`#services=a,b&status=...&vcenters=...`),
   * so that a reload or a bookmark shows the same view. It holds no secret.
   */
  function saveFilter(f) {
    const q = new URLSearchParams();
    q.set('services', f.services.join(','));
    if (f.status.length < STATUSES.length) q.set('status', f.status.join(','));
    if (f.vcenters.length < state.vcenters.length) q.set('vcenters', f.vcenters.join(','));
    history.replaceState(null, '', `#${q}`);
  }

  /** The filter in the fragment: {services, status, vcenters}, each a list or null. */
  function savedFilter() {
    const q = new URLSearchParams(location.hash.slice(1));
    const list = (k) => (q.has(k) ? q.get(k).split(',').filter(Boolean) : null);
    return { services: list('services'), status: list('status'), vcenters: list('vcenters') };
  }

  /** The filter in the form, or a message saying what is missing. */
  function readFilter() {
    const services = [...new Set($('f-services').value.split(/[\s,]+/).filter(Boolean))];
    const status = checkedValues('f-status');
    const vcenters = checkedValues('f-vcenters');
    if (!services.length) return 'Name at least one service.';
    if (!status.length) return 'Choose at least one status.';
    if (state.vcenters.length && !vcenters.length) return 'Choose at least one vCenter.';
    return { services, status, vcenters };
  }

  /** The List Tasks query of a filter: every status or every vCenter is left out. */
  function query(f) {
    const q = new URLSearchParams();
    for (const s of f.services) q.append('filter_spec.services', s);
    if (f.status.length < STATUSES.length) {
      for (const s of f.status) q.append('filter_spec.status', s);
    }
    if (f.vcenters.length < state.vcenters.length) {
      for (const v of f.vcenters) q.append('vcenter', v);
    }
    return q.toString();
  }

  function applyFilter(event) {
    if (event) event.preventDefault();
    const f = readFilter();
    if (typeof f === 'string') {
      setText('filter-error', f);
      return;
    }
    setText('filter-error', '');
    state.filter = f;
    saveFilter(f);
    clearTasks();
    watch();
  }

  // ---------------------------------------------------------------------------------
  // The stream
  // ---------------------------------------------------------------------------------

  function setConn(what) {
    const c = $('conn');
    const text = {
      connecting: 'connecting…',
      live: 'live',
      reconnecting: 'reconnecting…',
      offline: 'offline',
    };
    c.dataset.state = what;
    c.className = `conn conn-${what}`;
    c.textContent = text[what] || what;
  }

  function stopWatch() {
    clearTimeout(state.retryTimer);
    state.retryTimer = null;
    if (state.source) state.source.close();
    state.source = null;
    setConn('offline');
  }

  function parse(data) {
    try {
      return JSON.parse(data);
    } catch (e) {
      console.warn('vcproxy: an event that is not JSON', e);
      return null;
    }
  }

  /** Opens the stream for the filter in force (the table is kept until a snapshot). */
  function watch() {
    stopWatch();
    const q = query(state.filter);
    const es = new EventSource(`/vcproxy/v1/tasks/watch?${q}`);
    state.source = es;
    setConn('connecting');
    const mine = (fn) => (ev) => {
      if (state.source !== es) return;
      const data = parse(ev.data);
      if (data) fn(data);
    };
    es.addEventListener('open', () => {
      if (state.source === es) setConn('live');
    });
    es.addEventListener('snapshot', mine((d) => {
      onSnapshot(d);
      setConn('live');
    }));
    es.addEventListener('task', mine(onTask));
    es.addEventListener('vcenter', mine(onVcenter));
    es.addEventListener('error', () => {
      if (state.source !== es) return;
      if (es.readyState !== EventSource.CLOSED) {
        // The browser reconnects by itself, sending Last-Event-ID.
        setConn('reconnecting');
        return;
      }
      // It gave up: the answer was not a stream (401, 400, 5xx). Find out why.
      es.close();
      state.source = null;
      setConn('reconnecting');
      recover(q);
    });
  }

  async function recover(q) {
    const r = await call('GET', `/vcproxy/v1/tasks?${q}`);
    // Meanwhile another filter was applied, or the user logged out.
    if (state.source !== null || !state.csrf || !state.filter || query(state.filter) !== q) return;
    if (r.status === 401) {
      showLogin(ENDED);
      return;
    }
    if (r.status >= 400 && r.status < 500) {
      setConn('offline');
      setText('filter-error', errorText(r.data) || `The proxy refused this filter (HTTP ${r.status}).`);
      return;
    }
    state.retryTimer = setTimeout(watch, RETRY_MS);
  }

  function keyOf(vcenter, task) {
    return `${vcenter}\u0000${task}`;
  }

  function onSnapshot(d) {
    clearTasks();
    for (const v of Array.isArray(d.vcenters) ? d.vcenters : []) {
      if (v && v.name) state.health.set(str(v.name), v);
    }
    for (const t of Array.isArray(d.tasks) ? d.tasks : []) {
      if (!t || !t.task) continue;
      const key = keyOf(str(t.vcenter), str(t.task));
      state.tasks.set(key, { vcenter: str(t.vcenter), task: str(t.task), info: t.info || {} });
      state.dirty.add(key);
    }
    state.snapshots += 1;
    scheduleRender();
  }

  function onTask(d) {
    if (!d.task) return;
    const key = keyOf(str(d.vcenter), str(d.task));
    if (d.change === 'removed' || !d.info) {
      state.tasks.delete(key);
    } else {
      state.tasks.set(key, { vcenter: str(d.vcenter), task: str(d.task), info: d.info });
    }
    state.dirty.add(key);
    scheduleRender();
  }

  function onVcenter(d) {
    if (!d.name) return;
    state.health.set(str(d.name), d);
    scheduleRender();
  }

  // ---------------------------------------------------------------------------------
  // The table and the counts
  // ---------------------------------------------------------------------------------

  function clearTasks() {
    state.tasks.clear();
    state.rows.clear();
    state.dirty.clear();
    state.health.clear();
    $('task-rows').replaceChildren();
    scheduleRender();
  }

  /** Renders once for a burst of events. */
  function scheduleRender() {
    if (state.renderTimer === null) state.renderTimer = setTimeout(render, 30);
  }

  /** Active tasks first (newest start first), then finished ones, latest end first. */
  function compare(a, b) {
    const ia = a.info;
    const ib = b.info;
    const aa = ACTIVE.has(ia.status) ? 0 : 1;
    const ab = ACTIVE.has(ib.status) ? 0 : 1;
    if (aa !== ab) return aa - ab;
    const ta = str(ia.end_time || ia.start_time);
    const tb = str(ib.end_time || ib.start_time);
    if (ta !== tb) return ta < tb ? 1 : -1;
    if (a.vcenter !== b.vcenter) return a.vcenter < b.vcenter ? -1 : 1;
    return a.task < b.task ? -1 : a.task > b.task ? 1 : 0;
  }

  function cell(className, text, title) {
    const td = el('td', className, text);
    if (title) td.title = title;
    return td;
  }

  /**
   * A cell of two lines (`first` above, `second` below) whose text is still
   * `first + sep + second`: the separator is a text node the layout hides.
   */
  function twoLines(className, first, sep, second, title) {
    const td = cell(className, null, title);
    if (first === null || first === undefined || first === '') return td;
    td.append(el('span', 'l1', first));
    if (second !== undefined && second !== null) {
      td.append(document.createTextNode(sep), el('span', 'l2', second));
    }
    return td;
  }

  function timeCell(className, iso) {
    const t = formatTime(iso);
    return t ? twoLines(className, t[0], ' ', t[1], str(iso)) : cell(className);
  }

  function fillRow(tr, t) {
    const i = t.info;
    const status = str(i.status);
    tr.dataset.vcenter = t.vcenter;
    tr.dataset.task = t.task;
    tr.dataset.status = status;
    tr.title = t.task;

    const badge = el('span', `badge st-${STATUSES.includes(status) ? status : 'OTHER'}`, status);
    const statusCell = cell('c-status');
    statusCell.append(badge);

    // The service without `com.vmware.`, allowed to break after its dots.
    const service = el('div', 'muted');
    str(i.service).replace(/^com\.vmware\./, '').split('.').forEach((part, n) => {
      if (n > 0) service.append('.', el('wbr'));
      service.append(part);
    });
    const op = cell('c-operation', null, str(i.service));
    op.append(el('div', 'op', i.operation), service);

    const target = i.target && typeof i.target === 'object'
      ? twoLines('c-target', str(i.target.type), ' ', str(i.target.id))
      : cell('c-target');
    // `DOMAIN\\name`: the domain above the name.
    const user = str(i.user);
    const slash = user.indexOf('\\');
    const userCell = slash > 0
      ? twoLines('c-user', user.slice(0, slash + 1), '', user.slice(slash + 1), user)
      : cell('c-user', user);

    const progress = cell('c-progress');
    const p = i.progress;
    if (p && typeof p === 'object' && Number(p.total) > 0) {
      const bar = el('progress');
      bar.max = Number(p.total);
      bar.value = Math.max(0, Math.min(Number(p.completed) || 0, Number(p.total)));
      progress.append(bar, el('span', 'frac', `${str(p.completed)}/${str(p.total)}`));
      if (p.message) progress.title = errorText({ messages: [p.message] });
    }

    const description = i.description && typeof i.description === 'object'
      ? str(i.description.default_message) : '';
    const error = status === 'FAILED' ? errorText(i.error) : '';

    tr.className = `row-${status}`;
    tr.replaceChildren(
      cell('c-vcenter', t.vcenter),
      statusCell,
      op,
      target,
      userCell,
      progress,
      timeCell('c-start', i.start_time),
      timeCell('c-end', i.end_time),
      cell('c-desc', description),
      cell('c-error', error),
    );
  }

  function render() {
    state.renderTimer = null;
    for (const key of state.dirty) {
      const t = state.tasks.get(key);
      if (!t) {
        const gone = state.rows.get(key);
        if (gone) gone.remove();
        state.rows.delete(key);
        continue;
      }
      let tr = state.rows.get(key);
      if (!tr) {
        tr = el('tr');
        state.rows.set(key, tr);
      }
      fillRow(tr, t);
    }
    const hadChanges = state.dirty.size > 0;
    state.dirty.clear();
    if (hadChanges) {
      const sorted = Array.from(state.tasks.entries()).sort((a, b) => compare(a[1], b[1]));
      $('task-rows').replaceChildren(...sorted.map(([key]) => state.rows.get(key)));
    }
    renderCounts();
    // How many snapshots the table has shown (the browser test waits on it).
    $('tasks').dataset.snapshots = String(state.snapshots);
    show('empty', state.snapshots > 0 && state.tasks.size === 0 && state.source !== null);
  }

  function chip(className, label, count, extra) {
    const c = el('span', `chip ${className}`);
    c.append(el('span', 'label', label), el('span', 'count', count));
    if (extra) c.append(el('span', 'extra', extra));
    return c;
  }

  function renderCounts() {
    const perVcenter = new Map();
    const perStatus = new Map();
    for (const t of state.tasks.values()) {
      perVcenter.set(t.vcenter, (perVcenter.get(t.vcenter) || 0) + 1);
      const s = str(t.info.status);
      perStatus.set(s, (perStatus.get(s) || 0) + 1);
    }

    const f = state.filter;
    const names = f && f.vcenters.length ? [...f.vcenters] : [...state.vcenters];
    for (const n of [...perVcenter.keys(), ...state.health.keys()]) {
      if (!names.includes(n)) names.push(n);
    }
    const vcs = $('counts-vcenters');
    vcs.replaceChildren(el('span', 'chips-title', 'vCenters'));
    for (const n of names) {
      const h = state.health.get(n);
      const bad = h && h.ok === false;
      let extra = '';
      if (bad) {
        const why = errorText(h.error);
        extra = h.status ? `HTTP ${h.status}${why ? `: ${why}` : ''}` : why || 'unreachable';
      }
      const c = chip(bad ? 'vc bad' : 'vc', n, perVcenter.get(n) || 0, extra);
      c.dataset.vcenter = n;
      c.dataset.count = String(perVcenter.get(n) || 0);
      if (bad) c.title = extra;
      vcs.append(c);
    }

    const sts = $('counts-status');
    sts.replaceChildren(el('span', 'chips-title', 'Status'));
    const total = chip('total', 'all', state.tasks.size);
    total.dataset.status = 'ALL';
    total.dataset.count = String(state.tasks.size);
    sts.append(total);
    for (const s of f ? f.status : STATUSES) {
      const c = chip(`st st-${s}`, s, perStatus.get(s) || 0);
      c.dataset.status = s;
      c.dataset.count = String(perStatus.get(s) || 0);
      sts.append(c);
    }
  }

  // ---------------------------------------------------------------------------------
  // Start-up
  // ---------------------------------------------------------------------------------

  async function enterApp() {
    show('login-view', false);
    show('app-view', true);
    $('who').textContent = state.user;
    show('who', true);
    show('logout', true);
    show('conn', true);
    setText('filter-error', '');
    const r = await call('GET', '/vcproxy/v1/vcenters');
    if (r.status === 401) {
      showLogin(ENDED);
      return;
    }
    state.vcenters = r.ok && r.data && Array.isArray(r.data.vcenters)
      ? r.data.vcenters.map(str) : [];
    if (!r.ok) setText('filter-error', `The vCenters could not be listed (HTTP ${r.status || 'no answer'}).`);
    buildVcenterChecks(savedFilter().vcenters);
    applyFilter();
  }

  async function start() {
    $('login-form').addEventListener('submit', login);
    $('filter').addEventListener('submit', applyFilter);
    $('logout').addEventListener('click', logout);
    const saved = savedFilter();
    buildStatusChecks(saved.status);
    $('f-services').value = (saved.services && saved.services.length ? saved.services : SERVICES)
      .join('\n');
    const r = await call('GET', '/ui/session');
    if (r.ok && r.data && r.data.csrf) {
      state.user = str(r.data.user);
      state.csrf = str(r.data.csrf);
      await enterApp();
    } else {
      showLogin('');
    }
  }

  start();
})();
