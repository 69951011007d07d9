// The dashboard's slow cards: each placeholder (a section with data-source) is replaced by its card from
// /dashboard/sections/{id}, fetched with the login cookie; if that fails, the placeholder says so.
// The fragment is parsed inert (DOMParser) and only a <section> with the placeholder's id is put in.
(function () {
  "use strict";
  if (!window.fetch || !window.DOMParser) return;

  function failed(placeholder) {
    var loading = placeholder.querySelector(".loading");
    if (loading) {
      loading.textContent = "This section could not be loaded.";
      loading.className = "empty unavailable";
    }
    placeholder.removeAttribute("aria-busy");
    placeholder.classList.remove("pending");
  }

  function fill(placeholder) {
    fetch(placeholder.getAttribute("data-source"), { credentials: "same-origin", headers: { Accept: "text/html" } })
      .then(function (response) {
        if (!response.ok) throw new Error("HTTP " + response.status);
        return response.text();
      })
      .then(function (text) {
        var card = new DOMParser().parseFromString(text, "text/html").body.firstElementChild;
        if (!card || card.tagName !== "SECTION" || card.id !== placeholder.id) throw new Error("not this card");
        placeholder.replaceWith(document.importNode(card, true));
      })
      .catch(function () {
        failed(placeholder);
      });
  }

  Array.prototype.forEach.call(document.querySelectorAll("section[data-source]"), fill);
})();
