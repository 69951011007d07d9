/*
 * mcp-gateway tracker.js: the browser SDK (seed 000's window.anacoic).
 *
 *   <script src="https://your-gateway/tracker.js" data-gateway="YOUR_GATEWAY_ID"></script>
 *
 * Attributes of the script tag:
 *   data-gateway    the gateway id (required)
 *   data-auto-page  "false" disables the PageView sent on load (default: sent)
 *   data-endpoint   the gateway's base URL (default: the origin this script was loaded from)
 *   data-emq        "optimize" enables the EMQ features: the first-party _fbp cookie is created when
 *                   missing (fb.1.<ms>.<random>) and _fbc is kept from an fbclid landing
 *                   (fb.1.<ms>.<fbclid>), as Meta's pixel does, so every later event carries both.
 *                   Always: existing _fbp/_fbc cookies and an fbclid in the URL are sent as user.fbp/fbc.
 *   data-token      the project token (the gateway's pk_ key): enables A/B experiments (getVariant), whose
 *                   config comes from GET /experiments/config?token=
 *   data-mcp        "true" enables the AI agent features: a <link rel="mcp"> to the gateway's MCP endpoint
 *                   in the page's head (agents reading the page find it), window.anacoic.mcp with the
 *                   endpoints, and events from automated browsers and AI agents carry custom_data.agent.
 *
 * Every event carries its page context at the top level: url, path, referrer, title (page() adds the
 * page's name as page), so reports by page work for every event.
 *
 * API (window.anacoic, also window.mcpGateway):
 *   track({event_name, event_id?, user?, custom_data?})   send one event to POST /track
 *   page(name?, properties?)                               send a PageView
 *   identify(userId, traits?)                              remember the user for later events
 *   flush()                                                a Promise settled when sent events are answered
 *   getVariant(experiment)                                 a Promise of the visitor's variant of an active
 *                                                          experiment (its id or name; null if none): the
 *                                                          first time, a $experiment_exposure event is sent;
 *                                                          from then on every event carries the visitor's
 *                                                          variants as custom_data.$experiments {id: variant}
 *   config {gateway_id, mcp_enabled, emq_mode}
 *   mcp {url, sse_url}                                     with data-mcp="true": the gateway's MCP endpoints
 *
 * An anonymous id is kept in localStorage (else a first-party cookie, else memory) and a session
 * id in sessionStorage, renewed after 30 minutes without events.
 */
(function () {
  "use strict";

  var SESSION_TIMEOUT_MS = 30 * 60 * 1000;
  var ANON_KEY = "mcpg_anonymous_id";
  var SESSION_KEY = "mcpg_session";
  var USER_KEY = "mcpg_user";
  var EXPERIMENTS_KEY = "mcpg_experiments"; // {experiment id: variant} the visitor was exposed to
  var FB_COOKIE_SECONDS = 90 * 24 * 3600; // what Meta's pixel gives _fbp and _fbc
  var AGENT_PATTERN =
    /(ChatGPT-User|OAI-SearchBot|GPTBot|Claude-User|Claude-Web|ClaudeBot|Perplexity-User|PerplexityBot|Google-Extended|Bytespider|HeadlessChrome)/;

  var script =
    document.currentScript || document.querySelector("script[data-gateway]");
  if (!script) return;
  var gatewayId = script.getAttribute("data-gateway");
  if (!gatewayId) {
    if (window.console) console.warn("tracker.js: data-gateway is required");
    return;
  }
  var endpoint = (script.getAttribute("data-endpoint") || originOf(script.src)).replace(/\/+$/, "");
  var trackUrl = endpoint + "/track?gid=" + encodeURIComponent(gatewayId);
  var emqMode = script.getAttribute("data-emq") || "standard";
  var mcpEnabled = script.getAttribute("data-mcp") === "true";
  var projectToken = script.getAttribute("data-token");
  var experimentConfig = null; // the Promise of GET /experiments/config, fetched once
  var memory = {};
  var pending = [];

  function originOf(src) {
    try {
      return new URL(src, window.location.href).origin;
    } catch (e) {
      return window.location.origin;
    }
  }

  function uuid() {
    if (window.crypto && window.crypto.randomUUID) return window.crypto.randomUUID();
    return "xxxxxxxx-xxxx-4xxx-yxxx-xxxxxxxxxxxx".replace(/[xy]/g, function (c) {
      var r = (Math.random() * 16) | 0;
      return (c === "x" ? r : (r & 0x3) | 0x8).toString(16);
    });
  }

  // -- storage with fallbacks ------------------------------------------------------------------

  function storageGet(storage, key) {
    try {
      return window[storage].getItem(key);
    } catch (e) {
      return null;
    }
  }

  function storageSet(storage, key, value) {
    try {
      window[storage].setItem(key, value);
      return true;
    } catch (e) {
      return false;
    }
  }

  function cookieGet(key) {
    var match = document.cookie.match(new RegExp("(?:^|; )" + key + "=([^;]*)"));
    return match ? decodeURIComponent(match[1]) : null;
  }

  function cookieSet(key, value, maxAgeSeconds) {
    try {
      document.cookie =
        key + "=" + encodeURIComponent(value) + "; path=/; max-age=" + (maxAgeSeconds || 31536000) + "; SameSite=Lax";
      return cookieGet(key) === value;
    } catch (e) {
      return false;
    }
  }

  // -- Meta's browser and click ids (EMQ) ---------------------------------------------------------

  function queryParam(name) {
    try {
      return new URL(window.location.href).searchParams.get(name);
    } catch (e) {
      return null;
    }
  }

  // fb.<subdomain index>.<creation time, ms>.<fbclid>; a new fbclid replaces an older click id.
  function clickId() {
    var stored = cookieGet("_fbc") || memory._fbc;
    var fbclid = queryParam("fbclid");
    if (!fbclid) return stored;
    if (stored && stored.split(".").slice(3).join(".") === fbclid) return stored;
    var fbc = "fb.1." + Date.now() + "." + fbclid;
    if (emqMode !== "optimize" || !cookieSet("_fbc", fbc, FB_COOKIE_SECONDS)) memory._fbc = fbc; // this page's events
    return fbc;
  }

  // fb.<subdomain index>.<creation time, ms>.<random number>, created only in optimize mode.
  function browserId() {
    var stored = cookieGet("_fbp");
    if (stored || emqMode !== "optimize") return stored;
    var fbp = "fb.1." + Date.now() + "." + Math.floor(1e9 + Math.random() * 9e9);
    return cookieSet("_fbp", fbp, FB_COOKIE_SECONDS) ? fbp : null;
  }

  // -- AI agents ---------------------------------------------------------------------------------

  var mcp = {
    url: endpoint + "/mcp?gid=" + encodeURIComponent(gatewayId),
    sse_url: endpoint + "/v1/mcp/sse?gid=" + encodeURIComponent(gatewayId),
  };

  function advertiseMcp() {
    try {
      if (document.querySelector('link[rel="mcp"]')) return;
      var link = document.createElement("link");
      link.rel = "mcp";
      link.href = mcp.url;
      link.setAttribute("data-sse", mcp.sse_url);
      (document.head || document.documentElement).appendChild(link);
    } catch (e) {}
  }

  // The agent a page is shown to: an automated browser (navigator.webdriver) or a known AI agent's user agent.
  function agentName() {
    var found = (navigator.userAgent || "").match(AGENT_PATTERN);
    if (found) return found[1];
    return navigator.webdriver ? "webdriver" : null;
  }

  function anonymousId() {
    var id = storageGet("localStorage", ANON_KEY) || cookieGet(ANON_KEY) || memory[ANON_KEY];
    if (!id) {
      id = uuid();
      if (!storageSet("localStorage", ANON_KEY, id) && !cookieSet(ANON_KEY, id)) memory[ANON_KEY] = id;
    }
    return id;
  }

  function sessionId() {
    var now = Date.now();
    var session = null;
    try {
      session = JSON.parse(storageGet("sessionStorage", SESSION_KEY) || memory[SESSION_KEY] || "null");
    } catch (e) {
      session = null;
    }
    if (!session || !session.id || now - session.last > SESSION_TIMEOUT_MS) {
      session = { id: uuid(), last: now };
    }
    session.last = now;
    var text = JSON.stringify(session);
    if (!storageSet("sessionStorage", SESSION_KEY, text)) memory[SESSION_KEY] = text;
    return session.id;
  }

  function storedUser() {
    try {
      return JSON.parse(storageGet("localStorage", USER_KEY) || memory[USER_KEY] || "null") || {};
    } catch (e) {
      return {};
    }
  }

  // -- sending ----------------------------------------------------------------------------------

  function send(body) {
    var json = JSON.stringify(body);
    if (window.fetch) {
      var request = window
        .fetch(trackUrl, {
          method: "POST",
          headers: { "Content-Type": "application/json" },
          body: json,
          keepalive: true,
          credentials: "omit",
          mode: "cors",
        })
        .catch(function () {});
      pending.push(request);
      return;
    }
    // Some browsers refuse a beacon whose type is not CORS-safelisted: then XMLHttpRequest sends it.
    try {
      if (navigator.sendBeacon && navigator.sendBeacon(trackUrl, new Blob([json], { type: "application/json" }))) {
        return;
      }
    } catch (e) {}
    var xhr = new XMLHttpRequest();
    xhr.open("POST", trackUrl, true);
    xhr.setRequestHeader("Content-Type", "application/json");
    xhr.send(json);
  }

  function merge(target, source) {
    if (source && typeof source === "object") {
      for (var key in source) {
        if (Object.prototype.hasOwnProperty.call(source, key)) target[key] = source[key];
      }
    }
    return target;
  }

  function track(event) {
    event = event || {};
    if (!event.event_name) {
      if (window.console) console.warn("tracker.js: track() needs an event_name");
      return;
    }
    var known = storedUser();
    var user = {};
    if (known.external_id) user.external_id = known.external_id;
    if (known.email) user.email = known.email;
    if (known.phone) user.phone = known.phone;
    var fbp = browserId();
    var fbc = clickId();
    if (fbp) user.fbp = fbp;
    if (fbc) user.fbc = fbc;
    merge(user, event.user);
    var data = merge({}, event.custom_data);
    var assigned = exposedVariants();
    if (data.$experiments === undefined && Object.keys(assigned).length) data.$experiments = assigned;
    var agent = mcpEnabled ? agentName() : null;
    if (agent && data.agent === undefined) data.agent = agent;
    send({
      event_name: String(event.event_name),
      event_id: event.event_id || uuid(),
      timestamp: Date.now() / 1000,
      user: user,
      custom_data: data,
      url: window.location.href,
      path: window.location.pathname,
      referrer: document.referrer || undefined,
      title: document.title || undefined,
      page: event.page,
      anonymous_id: anonymousId(),
      session_id: sessionId(),
    });
  }

  function page(name, properties) {
    track({
      event_name: "PageView",
      page: name ? String(name) : document.title || undefined,
      custom_data: properties,
    });
  }

  function identify(userId, traits) {
    var user = storedUser();
    if (userId) user.external_id = String(userId);
    if (traits && traits.email) user.email = String(traits.email);
    if (traits && traits.phone) user.phone = String(traits.phone);
    var text = JSON.stringify(user);
    if (!storageSet("localStorage", USER_KEY, text)) memory[USER_KEY] = text;
    var data = {};
    for (var key in traits || {}) {
      if (key !== "email" && key !== "phone" && Object.prototype.hasOwnProperty.call(traits, key)) {
        data[key] = traits[key];
      }
    }
    track({ event_name: "Identify", custom_data: data });
  }

  // -- A/B experiments ---------------------------------------------------------------------------

  // 32-bit FNV-1a of the UTF-8 bytes of text (mcp_gateway/experiments/assignment.py's fnv1a_32).
  function fnv1a(text) {
    var bytes = unescape(encodeURIComponent(text));
    var hash = 0x811c9dc5;
    for (var i = 0; i < bytes.length; i++) {
      hash ^= bytes.charCodeAt(i);
      hash = Math.imul(hash, 0x01000193) >>> 0;
    }
    return hash >>> 0;
  }

  // MurmurHash3's 32-bit finaliser (assignment.py's fmix32).
  function fmix32(hash) {
    hash ^= hash >>> 16;
    hash = Math.imul(hash, 0x85ebca6b) >>> 0;
    hash ^= hash >>> 13;
    hash = Math.imul(hash, 0xc2b2ae35) >>> 0;
    return (hash ^ (hash >>> 16)) >>> 0;
  }

  // The visitor's variant: the same arithmetic, in the same order, as assignment.py's assign.
  function assign(experiment, visitorId) {
    var total = 0;
    for (var i = 0; i < experiment.weights.length; i++) total += experiment.weights[i];
    var point = (fmix32(fnv1a(experiment.id + ":" + visitorId)) / 4294967296) * total;
    var running = 0;
    for (var j = 0; j < experiment.variants.length; j++) {
      running += experiment.weights[j];
      if (point < running) return experiment.variants[j];
    }
    return experiment.variants[experiment.variants.length - 1];
  }

  function exposedVariants() {
    try {
      return JSON.parse(storageGet("localStorage", EXPERIMENTS_KEY) || memory[EXPERIMENTS_KEY] || "null") || {};
    } catch (e) {
      return {};
    }
  }

  function loadExperiments() {
    if (!experimentConfig) {
      experimentConfig =
        projectToken && window.fetch
          ? window
              .fetch(endpoint + "/experiments/config?token=" + encodeURIComponent(projectToken), { credentials: "omit" })
              .then(function (response) {
                return response.ok ? response.json() : { experiments: [] };
              })
              .then(function (config) {
                return config.experiments || [];
              })
              .catch(function () {
                return [];
              })
          : Promise.resolve([]);
    }
    return experimentConfig;
  }

  function getVariant(name) {
    return loadExperiments().then(function (experiments) {
      var experiment = null;
      for (var i = 0; i < experiments.length; i++) {
        if (experiments[i].id === name || experiments[i].name === name) experiment = experiments[i];
      }
      if (!experiment) return null;
      var variant = assign(experiment, anonymousId());
      var exposed = exposedVariants();
      if (exposed[experiment.id] !== variant) {
        exposed[experiment.id] = variant;
        var text = JSON.stringify(exposed);
        if (!storageSet("localStorage", EXPERIMENTS_KEY, text)) memory[EXPERIMENTS_KEY] = text;
        track({ event_name: "$experiment_exposure", custom_data: { experiment: experiment.id, variant: variant } });
      }
      return variant;
    });
  }

  function flush() {
    var sent = pending.slice();
    pending = [];
    return Promise.all(sent).then(function () {});
  }

  var sdk = {
    track: track,
    page: page,
    identify: identify,
    flush: flush,
    getVariant: getVariant,
    config: {
      gateway_id: gatewayId,
      mcp_enabled: mcpEnabled,
      emq_mode: emqMode,
    },
  };
  if (mcpEnabled) {
    sdk.mcp = mcp;
    advertiseMcp();
  }
  window.anacoic = sdk;
  window.mcpGateway = sdk;

  if (script.getAttribute("data-auto-page") !== "false") page();
})();
