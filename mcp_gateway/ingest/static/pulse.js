/*
 * mcp-gateway pulse.js: seed 001's visit tracker and form capture in one script (window.PulseGate).
 *
 *   <script src="https://your-gateway/pulse.js" data-gateway="YOUR_GATEWAY_ID"></script>
 *   or, with options:  PulseGate.init({gateway: "YOUR_GATEWAY_ID", project: "site"})
 *
 * init(options) (called by itself when the script tag has data-gateway, unless data-auto-init="false"):
 *   gateway           the gateway id (default: the tag's data-gateway)
 *   endpoint          the gateway's base URL (default: the origin this script was loaded from)
 *   heartbeatSeconds  a "$heartbeat" event this often while the page is visible (default 30; 0: none)
 *   pageView          false: no "page_view" event when the visit starts (default: sent)
 *   fingerprint       a browser fingerprint of your own, sent as X-Fingerprint-ID (none is computed)
 *   forms, project, requireConsent   form capture as in /form.js; forms: false turns it off
 *
 * A visit is one page load: POST /track/session/start on init, events to POST /track/event, and on
 * pagehide POST /track/session/end with the time on the page, page views, deepest scroll (percent)
 * and clicks, by navigator.sendBeacon as text/plain (fetch with keepalive where a beacon is refused),
 * from which the gateway scores engagement. The visitor id the gateway answers is kept in localStorage.
 *
 * API: init(options), track(name, properties?), page(properties?), end(), flush() (a Promise settled
 * when what was sent is answered), setConsent(given), sessionId(), visitorId().
 */
(function () {
  "use strict";
  if (window.PulseGate) return;

  var VISITOR_KEY = "pulse_visitor_id";
  var script = document.currentScript;
  var state = {
    started: false,
    ended: false,
    sessionId: null,
    visitorId: null,
    queue: [],
    inflight: [],
    ready: Promise.resolve(),
    startedAt: 0,
    pageViews: 0,
    clicks: 0,
    scrollDepth: 0
  };

  function attr(name) {
    return script ? script.getAttribute(name) : null;
  }

  function originOf(src) {
    try {
      return new URL(src, location.href).origin;
    } catch (e) {
      return location.origin;
    }
  }

  function stored(key) {
    try {
      return window.localStorage.getItem(key);
    } catch (e) {
      return null;
    }
  }

  function store(key, value) {
    try {
      window.localStorage.setItem(key, value);
    } catch (e) {
      /* storage refused: the gateway derives the visitor again next time */
    }
  }

  function url(path) {
    return state.endpoint + path + "?gid=" + encodeURIComponent(state.gateway);
  }

  function post(path, body) {
    var headers = { "Content-Type": "application/json" };
    if (state.visitorId) headers["X-Visitor-ID"] = state.visitorId;
    if (state.fingerprint) headers["X-Fingerprint-ID"] = state.fingerprint;
    var sent = fetch(url(path), { method: "POST", keepalive: true, headers: headers, body: JSON.stringify(body) })
      .then(function (response) {
        return response.json().then(function (answer) {
          if (!response.ok) throw new Error(path + ": " + response.status + " " + answer.error);
          return answer;
        });
      })
      .catch(function (error) {
        if (window.console) console.warn("pulse.js:", error);
        return null;
      });
    state.inflight.push(sent);
    return sent;
  }

  function beacon(path, body) {
    // A string beacon goes as text/plain, which needs no CORS preflight (a JSON one would, with credentials,
    // which the seed's "Access-Control-Allow-Origin: *" refuses); the gateway reads it as JSON on this route.
    try {
      if (navigator.sendBeacon && navigator.sendBeacon(url(path), JSON.stringify(body))) return;
    } catch (e) {
      /* no beacon: fall back to fetch */
    }
    post(path, body);
  }

  function visit() {
    return { session_id: state.sessionId, visitor_id: state.visitorId, url: location.href };
  }

  function track(name, properties) {
    if (!state.started || state.ended) return;
    if (!state.sessionId) {
      state.queue.push([name, properties]);
      return;
    }
    var body = visit();
    body.event_name = String(name);
    if (properties) body.properties = properties;
    post("/track/event", body);
  }

  function scrolled() {
    var root = document.documentElement;
    var height = Math.max(root.scrollHeight, document.body ? document.body.scrollHeight : 0);
    var seen = (window.scrollY || root.scrollTop || 0) + window.innerHeight;
    var depth = height > 0 ? Math.min(100, Math.round((seen / height) * 100)) : 100;
    if (depth > state.scrollDepth) state.scrollDepth = depth;
  }

  function end() {
    if (!state.sessionId || state.ended) return;
    state.ended = true;
    scrolled();
    var body = visit();
    body.duration_ms = Math.max(0, Date.now() - state.startedAt);
    body.page_views = state.pageViews;
    body.scroll_depth = state.scrollDepth;
    body.clicks = state.clicks;
    beacon("/track/session/end", body);
  }

  function init(options) {
    if (state.started) return window.PulseGate;
    options = options || {};
    state.gateway = options.gateway || attr("data-gateway");
    if (!state.gateway) {
      if (window.console) console.warn("pulse.js: a gateway id is required (data-gateway or init({gateway}))");
      return window.PulseGate;
    }
    state.started = true;
    state.endpoint = (options.endpoint || attr("data-endpoint") || originOf(script ? script.src : "")).replace(
      /\/+$/,
      ""
    );
    state.fingerprint = options.fingerprint || null;
    state.visitorId = stored(VISITOR_KEY);
    state.startedAt = Date.now();
    var start = { url: location.href, properties: { title: document.title } };
    if (document.referrer) start.referrer = document.referrer;
    state.ready = post("/track/session/start", start).then(function (answer) {
      if (!answer) return;
      state.sessionId = answer.session_id;
      state.visitorId = answer.visitor_id;
      store(VISITOR_KEY, answer.visitor_id);
      if (options.pageView !== false) page();
      var queued = state.queue.splice(0);
      queued.forEach(function (item) {
        track(item[0], item[1]);
      });
    });

    document.addEventListener("click", function () {
      state.clicks += 1;
    }, true);
    window.addEventListener("scroll", scrolled, { passive: true });
    window.addEventListener("pagehide", end);
    var heartbeat = options.heartbeatSeconds === undefined ? 30 : Number(options.heartbeatSeconds);
    if (heartbeat > 0) {
      setInterval(function () {
        if (document.visibilityState === "visible") track("$heartbeat", { active_ms: Date.now() - state.startedAt });
      }, heartbeat * 1000);
    }
    if (options.forms !== false && window.PulseForm) {
      window.PulseForm.start({
        gateway: state.gateway,
        endpoint: state.endpoint,
        forms: options.forms || attr("data-forms") || "auto",
        project: options.project || attr("data-project"),
        requireConsent: options.requireConsent === true || attr("data-require-consent") === "true",
        context: function () {
          return { session_id: state.sessionId, visitor_id: state.visitorId };
        }
      });
    }
    return window.PulseGate;
  }

  function page(properties) {
    state.pageViews += 1;
    track("page_view", properties || { title: document.title });
  }

  window.PulseGate = {
    init: init,
    track: track,
    page: page,
    end: end,
    flush: function () {
      return state.ready.then(function () {
        var forms = window.PulseForm ? window.PulseForm.flush() : Promise.resolve();
        return Promise.all(state.inflight.concat([forms]));
      });
    },
    setConsent: function (given) {
      if (window.PulseForm) window.PulseForm.setConsent(given);
    },
    sessionId: function () {
      return state.sessionId;
    },
    visitorId: function () {
      return state.visitorId;
    }
  };

  if (attr("data-gateway") && attr("data-auto-init") !== "false") init();
})();
