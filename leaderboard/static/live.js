// Live updates: listen to /api/events and, when the store's version moves past the one this
// page was rendered at, re-fetch this same URL and swap its <main>. The server escapes every
// untrusted string; DOMParser never runs scripts, and the CSP forbids inline ones anyway.
"use strict";
(function () {
  var main = document.getElementById("main");
  var badge = document.getElementById("live");
  if (!main || !window.EventSource || !window.fetch) { return; }
  var shown = parseInt(main.getAttribute("data-version") || "0", 10);
  var busy = false, again = false;

  function refresh() {
    if (busy) { again = true; return; }
    busy = true;
    fetch(window.location.href, { headers: { Accept: "text/html" }, cache: "no-cache", credentials: "same-origin" })
      .then(function (r) { return r.ok ? r.text() : null; })
      .then(function (html) {
        if (html === null) { return; }
        var doc = new DOMParser().parseFromString(html, "text/html");
        var fresh = doc.getElementById("main");
        if (!fresh) { return; }
        var v = parseInt(fresh.getAttribute("data-version") || "0", 10);
        if (v <= shown) { return; }
        shown = v;
        main.replaceWith(document.importNode(fresh, true));
        main = document.getElementById("main");
        document.title = doc.title;
        if (badge) { badge.textContent = "updated"; badge.classList.add("flash"); }
      })
      .catch(function () { /* the next event retries */ })
      .then(function () { busy = false; if (again) { again = false; refresh(); } });
  }

  var source = new EventSource("/api/events?after=" + shown);
  source.addEventListener("open", function () {
    if (badge) { badge.textContent = "live"; badge.classList.add("on"); }
  });
  source.addEventListener("error", function () {
    if (badge) { badge.textContent = "reconnecting"; badge.classList.remove("on"); }
  });
  source.addEventListener("version", function (e) {
    var msg = JSON.parse(e.data);
    if (msg.version > shown) { refresh(); }
  });
})();
