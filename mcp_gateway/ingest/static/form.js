/*
 * mcp-gateway form.js: forms on any site become leads (seed 001's form capture).
 *
 *   <script src="https://your-gateway/form.js" data-gateway="YOUR_GATEWAY_ID"></script>
 *   <form data-pulse-form="pricing-page"> <input type="email" name="email"> ... </form>
 *
 * Attributes of the script tag:
 *   data-gateway          the gateway id (required)
 *   data-endpoint         the gateway's base URL (default: the origin this script was loaded from)
 *   data-forms            "auto" (default), "marked" or "all": which forms (see PulseForm above)
 *   data-project          the project sent with each lead (a form's own data-project wins)
 *   data-require-consent  "true": send nothing until PulseForm.setConsent(true) or a checked consent box
 */
(function () {
  "use strict";
  var script = document.currentScript || document.querySelector("script[data-gateway][src*='form.js']");
  if (!script) return;
  var gateway = script.getAttribute("data-gateway");
  if (!gateway) {
    if (window.console) console.warn("form.js: data-gateway is required");
    return;
  }
  var origin;
  try {
    origin = new URL(script.src, location.href).origin;
  } catch (e) {
    origin = location.origin;
  }
  window.PulseForm.start({
    gateway: gateway,
    endpoint: (script.getAttribute("data-endpoint") || origin).replace(/\/+$/, ""),
    forms: script.getAttribute("data-forms") || "auto",
    project: script.getAttribute("data-project"),
    requireConsent: script.getAttribute("data-require-consent") === "true"
  });
})();
