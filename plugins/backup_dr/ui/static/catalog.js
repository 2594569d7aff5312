/* Backup catalog page: draws the size/duration charts (inline SVG) and shows times in the
 * viewer's time zone. Plain JavaScript, no library, nothing fetched from outside. */
(function () {
  "use strict";
  var SVG = "http://www.w3.org/2000/svg";
  var data = JSON.parse(document.getElementById("catalog-data").textContent);

  function el(name, attrs, text) {
    var node = document.createElementNS(SVG, name);
    Object.keys(attrs || {}).forEach(function (k) { node.setAttribute(k, attrs[k]); });
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function bytes(n) {
    var units = ["B", "KB", "MB", "GB", "TB"], i = 0;
    while (n >= 1000 && i < units.length - 1) { n /= 1000; i++; }
    return (i === 0 ? n.toFixed(0) : n.toFixed(1)) + " " + units[i];
  }

  /* Same form as the server's human_seconds (backup_dr.ui.page). */
  function seconds(s) {
    if (s === null || s === undefined) return "–";
    if (s < 1) return Math.round(s * 1000) + " ms";
    if (s < 60) return (s < 10 ? s.toFixed(1) : Math.round(s)) + "s";
    var m = Math.floor(s / 60), h = Math.floor(m / 60), d = Math.floor(h / 24);
    function two(big, small, unit) { return small ? big + " " + small + unit : big; }
    if (d) return two(d + "d", h % 24, "h");
    if (h) return two(h + "h", m % 60, "m");
    return two(m + "m", Math.floor(s % 60), "s");
  }

  function ago(iso) {
    var s = (Date.now() - Date.parse(iso)) / 1000;
    if (isNaN(s)) return iso;
    if (Math.abs(s) < 5) return "just now";
    return s < 0 ? "in " + seconds(-s) : seconds(s) + " ago";
  }

  function localTime(iso) {
    var d = new Date(iso);
    return isNaN(d) ? iso : d.toLocaleString(undefined, { year: "numeric", month: "short", day: "numeric", hour: "2-digit", minute: "2-digit" });
  }

  function sources() {
    var out = {};
    data.classes.forEach(function (c) {
      c.sources.forEach(function (s) { out[c.name + "/" + s.key] = s; });
    });
    return out;
  }

  /* Bars: size of each backup (left axis). Line: its duration, manifest finished_at -
   * started_at (right axis). x: one slot per backup, oldest left. */
  function drawChart(figure, source) {
    var points = source.history || [];
    var body = figure.querySelector(".chart-body");
    if (!points.length) return;
    var W = 720, H = 200, L = 64, R = 64, T = 14, B = 34;
    var iw = W - L - R, ih = H - T - B;
    var maxSize = Math.max.apply(null, points.map(function (p) { return p.size || 0; })) || 1;
    var durations = points.map(function (p) { return p.duration_seconds; }).filter(function (v) { return v !== null && v !== undefined; });
    var maxDur = Math.max.apply(null, durations.concat([0])) || 1;
    var svg = el("svg", { viewBox: "0 0 " + W + " " + H, role: "img", "class": "chart-svg",
      "aria-label": "size and duration of " + points.length + " backups", "data-points": points.length });
    svg.appendChild(el("line", { x1: L, y1: T + ih, x2: L + iw, y2: T + ih, "class": "axis" }));
    svg.appendChild(el("line", { x1: L, y1: T, x2: L, y2: T + ih, "class": "axis" }));
    svg.appendChild(el("line", { x1: L + iw, y1: T, x2: L + iw, y2: T + ih, "class": "axis" }));
    svg.appendChild(el("text", { x: L - 6, y: T + 10, "text-anchor": "end" }, bytes(maxSize)));
    svg.appendChild(el("text", { x: L - 6, y: T + ih, "text-anchor": "end" }, "0"));
    svg.appendChild(el("text", { x: L + iw + 6, y: T + 10 }, seconds(maxDur)));
    svg.appendChild(el("text", { x: L + iw + 6, y: T + ih }, "0s"));
    var slot = iw / points.length, barW = Math.max(2, Math.min(28, slot * 0.7));
    var path = [];
    points.forEach(function (p, i) {
      var cx = L + slot * (i + 0.5);
      var h = Math.max(1, ih * (p.size || 0) / maxSize);
      var bar = el("rect", { x: (cx - barW / 2).toFixed(1), y: (T + ih - h).toFixed(1), width: barW.toFixed(1),
        height: h.toFixed(1), "class": "bar", "data-backup": p.backup_id });
      bar.appendChild(el("title", {}, p.backup_id + "\n" + localTime(p.taken_at) + "\nsize " + bytes(p.size || 0) +
        "\nduration " + seconds(p.duration_seconds)));
      svg.appendChild(bar);
      if (p.duration_seconds !== null && p.duration_seconds !== undefined) {
        var y = T + ih - ih * p.duration_seconds / maxDur;
        path.push((path.length ? "L" : "M") + cx.toFixed(1) + " " + y.toFixed(1));
        var dot = el("circle", { cx: cx.toFixed(1), cy: y.toFixed(1), r: 3, "class": "pt" });
        dot.appendChild(el("title", {}, p.backup_id + ": " + seconds(p.duration_seconds)));
        svg.appendChild(dot);
      }
    });
    if (path.length) svg.insertBefore(el("path", { d: path.join(" "), "class": "line" }), svg.querySelector(".pt"));
    svg.appendChild(el("text", { x: L, y: H - 8 }, localTime(points[0].taken_at)));
    svg.appendChild(el("text", { x: L + iw, y: H - 8, "text-anchor": "end" }, localTime(points[points.length - 1].taken_at)));
    svg.appendChild(el("rect", { x: W / 2 - 110, y: H - 17, width: 10, height: 10, "class": "legend-size" }));
    svg.appendChild(el("text", { x: W / 2 - 96, y: H - 8 }, "size"));
    svg.appendChild(el("rect", { x: W / 2 - 40, y: H - 17, width: 10, height: 10, "class": "legend-duration" }));
    svg.appendChild(el("text", { x: W / 2 - 26, y: H - 8 }, "duration"));
    body.replaceChildren(svg);
  }

  function localiseTimes() {
    document.querySelectorAll("time[data-iso]").forEach(function (t) {
      var iso = t.getAttribute("data-iso");
      t.title = iso;
      t.textContent = t.hasAttribute("data-relative") ? ago(iso) : localTime(iso);
    });
  }

  var bySource = sources();
  document.querySelectorAll("figure.chart[data-chart]").forEach(function (figure) {
    var s = bySource[figure.getAttribute("data-chart")];
    if (s) drawChart(figure, s);
  });
  localiseTimes();
  setInterval(localiseTimes, 30000);
  /* Fresh data every few minutes while the page is in view (the server caches listings). */
  setInterval(function () {
    if (document.visibilityState === "visible") window.location.replace(window.location.pathname);
  }, 300000);
  document.body.setAttribute("data-ready", "1");
})();
