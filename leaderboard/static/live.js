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

  // Times are rendered in UTC; show them relative to now, with the exact time on hover.
  function ago(root) {
    var now = Date.now();
    root.querySelectorAll("time[datetime]").forEach(function (el) {
      var t = Date.parse(el.getAttribute("datetime"));
      if (isNaN(t)) { return; }
      var s = Math.max(0, Math.round((now - t) / 1000)), text;
      if (s < 60) { text = s + " s ago"; }
      else if (s < 3600) { text = Math.round(s / 60) + " min ago"; }
      else if (s < 172800) { text = Math.round(s / 3600) + " h ago"; }
      else { return; }
      if (!el.title) { el.title = el.textContent; }
      el.textContent = text;
    });
  }
  ago(document);
  setInterval(function () { ago(document); }, 30000);

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
        ago(main);
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
