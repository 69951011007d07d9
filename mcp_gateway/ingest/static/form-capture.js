/*
 * mcp-gateway form capture (window.PulseForm), the part /form.js and /pulse.js share; no dependencies.
 *
 * PulseForm.start({gateway, endpoint, forms?, project?, requireConsent?, context?}) listens for form
 * submissions and sends each one with a valid email to POST /lead.capture, without stopping the
 * submission itself. Which forms:
 *   forms: "marked"  only <form data-pulse-form="source-name">
 *          "all"     every form with an email field
 *          "auto"    (default) the marked ones if the page marks any, else every form with an email field
 *   A form with data-pulse-ignore is never captured.
 * Fields are found by type (email, tel) or name/id: email, name (or first_name + last_name), company,
 * phone, message. Passwords and card numbers are never read.
 * Consent: a form with a consent checkbox (data-pulse-consent, or named "consent") is sent only when
 * it is checked; PulseForm.setConsent(false) stops all capture; with requireConsent nothing is sent
 * until setConsent(true) or the form's own consent box is checked.
 * After the gateway answers, the form receives a "pulse:lead" event whose detail is the answer.
 */
(function () {
  "use strict";
  if (window.PulseForm) return;

  var NAMES = {
    email: ["email", "e-mail", "mail", "email_address", "emailaddress", "your-email"],
    name: ["name", "full_name", "fullname", "full-name", "your-name"],
    first: ["first_name", "firstname", "first-name", "fname", "given_name"],
    last: ["last_name", "lastname", "last-name", "lname", "family_name"],
    company: ["company", "company_name", "organization", "organisation", "org"],
    phone: ["phone", "phone_number", "tel", "telephone", "mobile"],
    message: ["message", "comments", "comment", "notes", "your-message"]
  };
  var EMAIL = /^[^\s@]+@[^\s@]+\.[^\s@]+$/;
  var state = { options: null, consent: null, inflight: [] };

  function fieldName(el) {
    return String(el.getAttribute("name") || el.id || "").toLowerCase();
  }

  function readable(el) {
    var type = String(el.type || "").toLowerCase();
    if (type === "password" || type === "hidden" || type === "file") return false;
    var auto = String(el.getAttribute("autocomplete") || "").toLowerCase();
    return auto.indexOf("cc-") !== 0;
  }

  function value(form, key, type) {
    var elements = form.elements;
    for (var i = 0; i < elements.length; i++) {
      var el = elements[i];
      if (!readable(el) || typeof el.value !== "string") continue;
      var named = NAMES[key].indexOf(fieldName(el)) !== -1;
      if ((named || (type && String(el.type).toLowerCase() === type)) && el.value.trim()) return el.value.trim();
    }
    return null;
  }

  function consentBox(form) {
    var elements = form.elements;
    for (var i = 0; i < elements.length; i++) {
      var el = elements[i];
      if (el.hasAttribute("data-pulse-consent") || fieldName(el) === "consent") return el;
    }
    return null;
  }

  function consented(form) {
    if (state.consent === false) return false;
    var box = consentBox(form);
    if (box && box.type === "checkbox") return box.checked;
    return state.consent === true || !state.options.requireConsent;
  }

  function captured(form) {
    if (form.hasAttribute("data-pulse-ignore")) return false;
    var mode = state.options.forms || "auto";
    if (form.hasAttribute("data-pulse-form")) return true;
    if (mode === "marked") return false;
    if (mode === "auto" && document.querySelector("form[data-pulse-form]")) return false;
    return value(form, "email", "email") !== null;
  }

  function lead(form) {
    var name = value(form, "name");
    if (!name) {
      var parts = [value(form, "first"), value(form, "last")].filter(Boolean);
      name = parts.length ? parts.join(" ") : null;
    }
    var context = state.options.context ? state.options.context() : {};
    var body = {
      email: value(form, "email", "email"),
      name: name,
      company: value(form, "company"),
      phone: value(form, "phone", "tel"),
      message: value(form, "message"),
      source: form.getAttribute("data-pulse-form") || form.id || form.getAttribute("name") || location.pathname,
      project: form.getAttribute("data-project") || state.options.project || null,
      url: location.href,
      referrer: document.referrer || null,
      session_id: context.session_id || null,
      visitor_id: context.visitor_id || null
    };
    Object.keys(body).forEach(function (key) {
      if (body[key] === null || body[key] === "") delete body[key];
    });
    return body;
  }

  function onSubmit(event) {
    var form = event.target;
    if (!state.options || !(form instanceof HTMLFormElement) || !captured(form) || !consented(form)) return;
    var body = lead(form);
    if (!body.email || !EMAIL.test(body.email)) return;
    var url = state.options.endpoint + "/lead.capture?gid=" + encodeURIComponent(state.options.gateway);
    var sent = fetch(url, {
      method: "POST",
      keepalive: true,
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify(body)
    })
      .then(function (response) {
        return response.json().then(function (answer) {
          answer.ok = response.ok;
          form.dispatchEvent(new CustomEvent("pulse:lead", { detail: answer }));
        });
      })
      .catch(function (error) {
        if (window.console) console.warn("form capture: the lead was not sent", error);
      });
    state.inflight.push(sent);
  }

  window.PulseForm = {
    start: function (options) {
      if (state.options || !options || !options.gateway) return;
      state.options = options;
      document.addEventListener("submit", onSubmit, true);
    },
    setConsent: function (given) {
      state.consent = Boolean(given);
    },
    flush: function () {
      return Promise.all(state.inflight);
    }
  };
})();
