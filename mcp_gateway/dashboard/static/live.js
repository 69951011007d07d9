// The dashboard's live feed: new events of the gateway from /stream (Server-Sent Events), newest first.
// The stream authenticates with the dashboard's HttpOnly cookie; rows are built with textContent only.
(function () {
  "use strict";
  var feed = document.getElementById("live-feed");
  var status = document.getElementById("live-status");
  if (!feed || !status) return;
  var MAX_ROWS = 50;

  function show(text, state) {
    status.textContent = text;
    status.className = "status " + state;
  }

  function span(className, text) {
    var el = document.createElement("span");
    el.className = className;
    el.textContent = text;
    return el;
  }

  function clock(ms) {
    var d = new Date(ms);
    return isNaN(d.getTime()) ? "" : d.toISOString().slice(11, 19);
  }

  function detail(event) {
    if (event.source === "mcp") {
      var parts = [event.primitive_type || "", event.success === false ? "error" : "ok"];
      if (typeof event.latency_ms === "number") parts.push(event.latency_ms.toFixed(1) + " ms");
      return parts.join(" · ");
    }
    return event.path || "";
  }

  function add(message) {
    var event;
    try {
      event = JSON.parse(message.data);
    } catch (e) {
      return;
    }
    if (!event || typeof event !== "object") return;
    var placeholder = feed.querySelector(".placeholder");
    if (placeholder) placeholder.remove();
    var row = document.createElement("li");
    row.className = "fresh";
    row.appendChild(span("time mono", clock(event.ts || event.ts_ms || event.timestamp)));
    row.appendChild(span("pill", event.source || ""));
    row.appendChild(span("grow", String(event.name || "")));
    row.appendChild(span("muted", detail(event)));
    feed.insertBefore(row, feed.firstChild);
    while (feed.children.length > MAX_ROWS) feed.removeChild(feed.lastChild);
  }

  if (!window.EventSource) {
    show("live feed unavailable", "down");
    return;
  }
  var source = new EventSource(feed.getAttribute("data-stream"));
  source.onopen = function () {
    show("live", "live");
  };
  source.onerror = function () {
    if (source.readyState === EventSource.CLOSED) show("live feed unavailable", "down");
    else show("reconnecting…", "");
  };
  source.onmessage = add;
})();
