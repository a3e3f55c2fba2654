// checkpointctl serve / report: renders every view from JSON. User data (stage names,
// messages, metadata) only ever reaches the page as text (textContent, setAttribute),
// never as markup.
(function () {
  'use strict';
  var view = document.body.getAttribute('data-view');
  var app = document.getElementById('app');
  var params = new URLSearchParams(location.search);
  var ACTIVE_MS = 1000, IDLE_MS = 5000;
  var skew = 0;  // the server's clock minus ours, for elapsed times
  var STATUSES = ['completed', 'started', 'failed', 'incomplete', 'cleared', 'stale'];

  // ---- DOM helpers ----
  function el(tag, attrs) {
    var node = document.createElement(tag);
    if (attrs) {
      Object.keys(attrs).forEach(function (key) {
        var value = attrs[key];
        if (value === null || value === undefined) return;
        if (key === 'text') node.textContent = String(value);
        else if (key === 'class') node.className = value;
        else node.setAttribute(key, String(value));
      });
    }
    for (var i = 2; i < arguments.length; i++) append(node, arguments[i]);
    return node;
  }
  // Appends each further argument: a node, text (as a text node), an array, or nothing.
  function append(node) {
    for (var i = 1; i < arguments.length; i++) {
      var child = arguments[i];
      if (child === null || child === undefined) continue;
      if (Array.isArray(child)) child.forEach(function (c) { append(node, c); });
      else node.appendChild(child instanceof Node ? child : document.createTextNode(String(child)));
    }
  }
  var SVG = 'http://www.w3.org/2000/svg';
  function svg(tag, attrs) {
    var node = document.createElementNS(SVG, tag);
    Object.keys(attrs || {}).forEach(function (key) {
      if (key === 'text') node.textContent = String(attrs[key]);
      else node.setAttribute(key, String(attrs[key]));
    });
    return node;
  }
  function token(text) { return String(text).toLowerCase().replace(/[^a-z]+/g, '-'); }
  function href(path, query) {
    var search = new URLSearchParams();
    Object.keys(query).forEach(function (k) {
      if (query[k] !== null && query[k] !== undefined && query[k] !== '') search.set(k, query[k]);
    });
    return path + '?' + search.toString();
  }
  function link(path, query, text) { return el('a', {href: href(path, query), text: text}); }
  function badge(status) { return el('span', {'class': 'badge ' + token(status), text: status}); }
  function cell(content, cls) { return el('td', {'class': cls || null}, content); }
  function table(headers, rows) {
    return el('table', null,
      el('thead', null, el('tr', null, headers.map(function (h) { return el('th', {text: h}); }))),
      el('tbody', null, rows));
  }
  function setContent(id, content) {
    var node = document.getElementById(id);
    while (node.firstChild) node.removeChild(node.firstChild);
    append(node, content);
  }
  function section(id, title) {
    return el('section', {'class': 'card', id: id + '-card'}, el('h2', {text: title}),
              el('div', {id: id}));
  }
  function crumbs(parts) { setContent('crumbs', parts); }
  function showError(message) {
    while (app.firstChild) app.removeChild(app.firstChild);
    append(app, el('div', {'class': 'error', role: 'alert', text: message}));
  }

  // ---- Formatting ----
  function duration(ms) {
    if (ms === null || ms === undefined) return '–';
    if (ms < 1000) return ms + ' ms';
    if (ms < 60000) return (ms / 1000).toFixed(ms < 10000 ? 2 : 1) + ' s';
    var s = Math.floor(ms / 1000), h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60);
    return h > 0 ? h + ' h ' + m + ' min' : m + ' min ' + (s % 60) + ' s';
  }
  function time(text) { return text ? String(text).replace('T', ' ') : '–'; }
  function parseTime(text) { return text ? Date.parse(text) : NaN; }
  function abbreviate(text, n) {
    if (!text) return '–';
    return el('span', {'class': 'mono', title: text,
                       text: text.length > n ? text.slice(0, n) + '…' : text});
  }
  function jsonText(value) {
    if (value === null || value === undefined) return '–';
    return el('code', {text: JSON.stringify(value)});
  }
  function elapsedNode(since) {
    return el('span', {'class': 'elapsed', 'data-since': parseTime(since),
                       text: 'running ' + duration(Math.max(0, Date.now() + skew - parseTime(since)))});
  }
  function tickElapsed() {
    var nodes = document.querySelectorAll('.elapsed[data-since]');
    for (var i = 0; i < nodes.length; i++) {
      var since = Number(nodes[i].getAttribute('data-since'));
      nodes[i].textContent = 'running ' + duration(Math.max(0, Date.now() + skew - since));
    }
  }

  // ---- Data ----
  function getJSON(url) {
    return fetch(url, {cache: 'no-store'}).then(function (response) {
      return response.json().then(function (body) {
        if (!response.ok) throw new Error(body && body.error ? body.error : 'HTTP ' + response.status);
        if (body && body.now) skew = parseTime(body.now) - Date.now();
        return body;
      });
    });
  }
  // Calls load() now and again after each answer, sooner while something runs.
  function poll(load) {
    var live = document.getElementById('live');
    function again() {
      load().then(function (active) {
        if (live) live.textContent = (active ? 'live · ' : 'watching · ') + 'updated ' +
            new Date().toLocaleTimeString();
        setTimeout(again, active ? ACTIVE_MS : IDLE_MS);
      }, function (error) {
        if (live) live.textContent = 'not updated: ' + error.message;
        setTimeout(again, IDLE_MS);
      });
    }
    again();
  }

  // ---- Views ----
  function countsNode(counts) {
    var names = Object.keys(counts || {});
    if (!names.length) return el('span', {'class': 'muted', text: 'no stages'});
    return el('span', {'class': 'counts'}, names.map(function (name) {
      return el('span', {'class': 'badge ' + token(name), text: counts[name] + ' ' + name});
    }));
  }

  function stageRows(pipeline, stages) {
    return stages.map(function (s) {
      var running = s.status === 'started';
      return el('tr', {'class': 'stage', 'data-status': s.status},
        cell(s.stage, 'name'),
        cell([badge(s.status), s.reason ? el('span', {'class': 'reason', text: s.reason}) : null]),
        cell(s.version, 'num'),
        cell(running ? elapsedNode(s.last_change) : duration(s.last_duration_ms), 'num'),
        cell(time(s.last_change), 'time'),
        cell(abbreviate(s.fingerprint, 12)),
        cell(jsonText(s.metadata), 'meta'),
        cell(s.message || '', 'msg'));
    });
  }
  function stagesTable(pipeline, stages) {
    if (!stages.length) return el('p', {'class': 'muted', text: 'No stages yet.'});
    return table(['stage', 'status', 'version', 'last duration', 'last change', 'fingerprint',
                  'metadata', 'message'], stageRows(pipeline, stages));
  }
  function runRows(pipeline, runs) {
    return runs.map(function (r) {
      return el('tr', {'class': 'run'},
        cell(link('/run', {pipeline: pipeline, run: r.run_id}, r.run_id), 'mono'),
        cell(badge(r.outcome)),
        cell(time(r.started_at), 'time'), cell(time(r.ended_at), 'time'),
        cell(duration(r.ended_at ? parseTime(r.ended_at) - parseTime(r.started_at) : null), 'num'),
        cell(r.completed, 'num'), cell(r.failed, 'num'),
        cell(r.host + ' · pid ' + r.pid + ' · ' + r.user, 'muted'));
    });
  }
  function runsTable(pipeline, runs, linked) {
    if (!runs.length) return el('p', {'class': 'muted', text: 'No runs yet.'});
    var rows = runRows(pipeline, runs.slice().reverse());
    if (!linked) rows.forEach(function (row) {
      var a = row.querySelector('a');
      if (a) a.parentNode.replaceChild(document.createTextNode(a.textContent), a);
    });
    return table(['run', 'outcome', 'started', 'ended', 'took', 'completed', 'failed',
                  'where'], rows);
  }
  function historyRows(rows) {
    return rows.map(function (r) {
      return el('tr', {'class': 'row', 'data-id': r.id},
        cell(r.id, 'num'),
        cell(r.stage === null ? el('em', {text: '(every stage)'}) : r.stage, 'name'),
        cell(badge(r.status)), cell(r.version, 'num'), cell(time(r.timestamp), 'time'),
        cell(duration(r.duration_ms), 'num'),
        cell(abbreviate(r.run_id, 13)),
        cell(r.message || '', 'msg'));
    });
  }
  function historyTable(rows) {
    if (!rows.length) return el('p', {'class': 'muted', text: 'No rows.'});
    return table(['id', 'stage', 'status', 'version', 'time', 'duration', 'run', 'message'],
                 historyRows(rows));
  }

  // The run timeline: one bar per stage (its last attempt in the run), inline SVG.
  function niceStep(length) {
    var raw = Math.max(6, length) / 6, power = Math.pow(10, Math.floor(Math.log10(raw)));
    var steps = [1, 2, 5, 10];
    for (var i = 0; i < steps.length; i++) if (steps[i] * power >= raw) return steps[i] * power;
    return 10 * power;
  }
  function timeline(data) {
    var bars = data.timeline.bars, length = Math.max(1, data.timeline.length_ms);
    var W = 1000, left = 200, right = 90, top = 28, lane = 30;
    var H = top + bars.length * lane + 8, span = W - left - right;
    var x = function (ms) { return left + span * ms / length; };
    var root = svg('svg', {'class': 'timeline', viewBox: '0 0 ' + W + ' ' + H, role: 'img',
                           'aria-label': 'run timeline'});
    var axis = svg('g', {'class': 'axis'});
    var step = niceStep(length);
    for (var t = 0; t <= length + 1e-9; t += step) {
      axis.appendChild(svg('line', {x1: x(t), x2: x(t), y1: top - 6, y2: H - 4}));
      axis.appendChild(svg('text', {x: x(t), y: top - 10, 'text-anchor': 'middle',
                                    text: duration(Math.round(t))}));
    }
    root.appendChild(axis);
    bars.forEach(function (bar, i) {
      var y = top + i * lane, g = svg('g', {'class': 'lane'});
      var label = svg('text', {'class': 'lane-label', x: left - 8, y: y + 19, 'text-anchor': 'end',
                               text: bar.stage.length > 26 ? bar.stage.slice(0, 25) + '…' : bar.stage});
      label.appendChild(svg('title', {text: bar.stage}));
      g.appendChild(label);
      var x0 = x(bar.start_ms), w = Math.max(3, x(bar.end_ms) - x0);
      var rect = svg('rect', {'class': 'timeline-bar ' + token(bar.status), x: x0, y: y + 6,
                              width: w, height: lane - 12, 'data-stage': bar.stage,
                              'data-status': bar.status});
      // The bar spans its rows' timestamps; the duration the library measured is in the tip.
      var span = bar.end_ms - bar.start_ms;
      rect.appendChild(svg('title', {text: bar.stage + ': ' + bar.status + ', ' + duration(span) +
          ' (' + time(bar.start) + ' → ' + time(bar.end) + '; measured ' +
          duration(bar.duration_ms) + ')' +
          (bar.attempts > 1 ? ', ' + bar.attempts + ' attempts' : '') +
          (bar.message ? '\n' + bar.message : '')}));
      g.appendChild(rect);
      g.appendChild(svg('text', {'class': 'duration', x: x0 + w + 6, y: y + 19,
                                 text: duration(span) +
                                       (bar.attempts > 1 ? ' ×' + bar.attempts : '')}));
      root.appendChild(g);
    });
    var legend = el('div', {'class': 'legend'}, ['completed', 'failed', 'started', 'incomplete']
        .map(function (s) { return el('span', {'class': s, text: s === 'started' ? 'running' : s}); }));
    if (!bars.length) return el('p', {'class': 'muted', text: 'This run ran no stage.'});
    return el('div', null, root, legend);
  }
  function failuresNode(failures) {
    if (!failures.length) return el('p', {'class': 'muted', text: 'No failures.'});
    return table(['id', 'stage', 'time', 'duration', 'message'], failures.map(function (r) {
      return el('tr', {'class': 'failure'}, cell(r.id, 'num'), cell(r.stage, 'name'),
                cell(time(r.timestamp), 'time'), cell(duration(r.duration_ms), 'num'),
                cell(r.message || '', 'msg'));
    }));
  }
  function runSummary(run) {
    function item(label, value) {
      return el('div', null, el('div', {'class': 'label', text: label}), el('div', null, value));
    }
    return el('div', {'class': 'summary'}, item('outcome', badge(run.outcome)),
      item('started', time(run.started_at)), item('ended', time(run.ended_at)),
      item('completed / failed', run.completed + ' / ' + run.failed),
      item('host · pid · user', run.host + ' · ' + run.pid + ' · ' + run.user));
  }

  function pipelinesView() {
    document.title = 'checkpoint · pipelines';
    append(app, el('h1', {text: 'Pipelines'}), section('pipelines', 'Every pipeline'));
    poll(function () {
      return getJSON('/api/pipelines').then(function (data) {
        var active = false;
        setContent('pipelines', data.pipelines.length ? table(
          ['pipeline', 'stages', 'by status', 'last run', 'last completed save'],
          data.pipelines.map(function (p) {
            if (p.last_run && p.last_run.outcome === 'running') active = true;
            return el('tr', {'class': 'pipeline'},
              cell(link('/pipeline', {pipeline: p.pipeline}, p.pipeline), 'name'),
              cell(p.stages, 'num'), cell(countsNode(p.stages_by_status)),
              cell(p.last_run ? [badge(p.last_run.outcome), ' ', time(p.last_run.started_at)] : '–'),
              cell(time(p.last_completed_at), 'time'));
          })) : el('p', {'class': 'muted', text: 'No pipeline has written to this database yet.'}));
        return active;
      });
    });
  }

  function pipelineView() {
    var pipeline = params.get('pipeline');
    document.title = 'checkpoint · ' + pipeline;
    crumbs([link('/pipeline', {pipeline: pipeline}, pipeline)]);
    append(app, el('h1', {text: pipeline}), el('div', {id: 'counts', 'class': 'summary'}),
           section('stages', 'Stages'), section('runs', 'Runs'),
           el('p', null, link('/history', {pipeline: pipeline}, 'Full history →')));
    poll(function () {
      return Promise.all([getJSON(href('/api/stages', {pipeline: pipeline})),
                          getJSON(href('/api/runs', {pipeline: pipeline}))]).then(function (both) {
        var stages = both[0].stages, runs = both[1].runs, counts = {};
        stages.forEach(function (s) { counts[s.status] = (counts[s.status] || 0) + 1; });
        setContent('counts', countsNode(counts));
        setContent('stages', stagesTable(pipeline, stages));
        setContent('runs', runsTable(pipeline, runs, true));
        return stages.some(function (s) { return s.status === 'started'; }) ||
               runs.some(function (r) { return r.outcome === 'running'; });
      });
    });
  }

  function runView() {
    var pipeline = params.get('pipeline'), run = params.get('run');
    document.title = 'checkpoint · ' + pipeline + ' · run ' + run;
    crumbs([link('/pipeline', {pipeline: pipeline}, pipeline), ' / run ', run]);
    append(app, el('h1', {text: 'Run ' + run}), el('div', {id: 'summary'}),
           section('timeline', 'Timeline'), section('failures', 'Failures'),
           section('recent', 'Its rows'),
           el('p', null, link('/history', {pipeline: pipeline, run: run}, 'Every row of this run →')));
    poll(function () {
      return getJSON(href('/api/run', {pipeline: pipeline, run: run})).then(function (data) {
        setContent('summary', runSummary(data.run));
        setContent('timeline', timeline(data));
        setContent('failures', failuresNode(data.failures));
        setContent('recent', [historyTable(data.recent.slice().reverse()),
          data.rows > data.recent.length ? el('p', {'class': 'muted',
            text: 'The last ' + data.recent.length + ' of ' + data.rows + ' rows.'}) : null]);
        return data.run.outcome === 'running';
      });
    });
  }

  function historyView() {
    var pipeline = params.get('pipeline');
    document.title = 'checkpoint · ' + pipeline + ' · history';
    crumbs([link('/pipeline', {pipeline: pipeline}, pipeline), ' / history']);
    var query = {pipeline: pipeline, stage: params.get('stage'), status: params.get('status'),
                 run: params.get('run'), before: params.get('before'), limit: params.get('limit')};
    var status = el('select', {name: 'status'}, el('option', {value: '', text: 'any'}),
        ['completed', 'started', 'failed', 'incomplete', 'cleared'].map(function (s) {
          var option = el('option', {value: s, text: s});
          if (s === query.status) option.selected = true;
          return option;
        }));
    var form = el('form', {'class': 'filters', method: 'get', action: '/history'},
      el('input', {type: 'hidden', name: 'pipeline', value: pipeline}),
      query.run ? el('input', {type: 'hidden', name: 'run', value: query.run}) : null,
      el('label', null, 'stage', el('input', {name: 'stage', value: query.stage || '',
                                              placeholder: 'every stage'})),
      el('label', null, 'status', status),
      el('label', null, 'rows per page', el('input', {name: 'limit', type: 'number', min: 1,
                                                       max: 1000, value: query.limit || 50})),
      el('button', {type: 'submit', text: 'Filter'}));
    append(app, el('h1', {text: 'History of ' + pipeline + (query.run ? ' · run ' + query.run : '')}),
           form, section('history', 'Newest first'), el('div', {id: 'pager', 'class': 'pager'}));
    getJSON(href('/api/history', query)).then(function (data) {
      setContent('history', historyTable(data.rows));
      var newest = Object.assign({}, query, {before: null});
      setContent('pager', [query.before ? link('/history', newest, '← Newest') : null,
        data.next_before !== null ? link('/history', Object.assign({}, query,
            {before: data.next_before}), 'Older →') : null]);
    }, function (error) { showError(error.message); });
  }

  // The one-file report: the data is in the page (no network).
  function reportView() {
    var data = JSON.parse(document.getElementById('checkpoint-data').textContent);
    var pipeline = data.pipeline;
    document.title = 'checkpoint report · ' + pipeline;
    crumbs([pipeline, data.run ? ' / run ' + data.run.run.run_id : '']);
    append(app, el('h1', {text: 'Pipeline ' + pipeline}),
           el('p', {'class': 'muted', text: 'Report written ' + time(data.generated_at) +
                    ' from ' + data.database + '.'}),
           el('div', {id: 'counts', 'class': 'summary'}), section('stages', 'Status'),
           section('timeline', 'Run timeline'), section('failures', 'Failures of the run'),
           section('recent', 'Rows of the run'), section('runs', 'Runs'));
    var counts = {};
    data.stages.forEach(function (s) { counts[s.status] = (counts[s.status] || 0) + 1; });
    setContent('counts', countsNode(counts));
    setContent('stages', stagesTable(pipeline, data.stages));
    setContent('runs', runsTable(pipeline, data.runs, false));
    if (data.run) {
      setContent('timeline', [runSummary(data.run.run), timeline(data.run)]);
      setContent('failures', failuresNode(data.run.failures));
      setContent('recent', [historyTable(data.run.recent),
        data.run.rows > data.run.recent.length ? el('p', {'class': 'muted',
          text: 'The last ' + data.run.recent.length + ' of ' + data.run.rows + ' rows.'}) : null]);
    } else {
      setContent('timeline', el('p', {'class': 'muted', text: 'This pipeline has no run.'}));
    }
  }

  var views = {pipelines: pipelinesView, pipeline: pipelineView, run: runView,
               history: historyView, report: reportView};
  try {
    (views[view] || function () { showError('Unknown view.'); })();
  } catch (error) {
    showError(error.message);
  }
  setInterval(tickElapsed, 1000);
})();
