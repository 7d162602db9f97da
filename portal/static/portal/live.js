// Shared by the live pages: number formats, a visibility-aware poller, the JSON
// calls (session cookie + CSRF token), the progress block, the throughput chart
// and the network-check card. Plain DOM, no framework: every string from the
// server goes in as textContent, never as HTML.
(function () {
  "use strict";
  var DTN = window.DTN = window.DTN || {};
  var FINISHED = ["succeeded", "failed", "canceled"];
  var SVG = "http://www.w3.org/2000/svg";

  DTN.isFinished = function (state) { return FINISHED.indexOf(state) !== -1; };

  // IEC units as the server writes them (dtn_protocol/units.py), so server- and client-rendered numbers agree.
  DTN.size = function (n) {
    if (n === null || n === undefined) return "?";
    var units = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"], i = 0;
    n = Number(n);
    while (Math.abs(n) >= 1024 && i < units.length - 1) { n /= 1024; i++; }
    return i === 0 ? Math.trunc(n) + " B" : n.toFixed(1) + " " + units[i];
  };
  DTN.rate = function (n) { return n === null || n === undefined ? "–/s" : DTN.size(n) + "/s"; };
  DTN.duration = function (s) {
    if (s === null || s === undefined || s < 0) return "–";
    s = Math.round(s);
    var h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), sec = s % 60;
    if (h) return h + " h " + m + " min";
    if (m) return m + " min " + sec + " s";
    return sec + " s";
  };

  // A folder listing's "up" target: the parent of a relative path, "." at the top.
  DTN.parentPath = function (path) {
    var parts = path.split("/");
    parts.pop();
    return parts.length ? parts.join("/") : ".";
  };
  // A pane a button opens (calling onOpen) and a close button hides, handing the focus back to `back`.
  DTN.togglePane = function (button, pane, close, onOpen, back) {
    button.addEventListener("click", function () {
      pane.hidden = false;
      button.setAttribute("aria-expanded", "true");
      onOpen();
    });
    close.addEventListener("click", function () {
      pane.hidden = true;
      button.setAttribute("aria-expanded", "false");
      back.focus();
    });
  };
  DTN.el = function (tag, attrs, children) {
    var node = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (key) {
      if (key === "text") node.textContent = attrs[key];
      else if (key === "className") node.className = attrs[key];
      else node.setAttribute(key, attrs[key]);
    });
    (children || []).forEach(function (child) {
      if (child !== null && child !== undefined) node.appendChild(typeof child === "string" ? document.createTextNode(child) : child);
    });
    return node;
  };

  function csrfToken() {
    var input = document.querySelector("input[name=csrfmiddlewaretoken]");
    if (input) return input.value;
    var match = document.cookie.match(/(?:^|;\s*)csrftoken=([^;]+)/);
    return match ? decodeURIComponent(match[1]) : "";
  }

  // Resolves with {ok, status, body}; a network failure resolves with status 0.
  DTN.api = function (method, url, body) {
    var options = {method: method, credentials: "same-origin", headers: {"Accept": "application/json"}};
    if (body !== undefined) {
      options.headers["Content-Type"] = "application/json";
      options.headers["X-CSRFToken"] = csrfToken();
      options.body = JSON.stringify(body);
    }
    return fetch(url, options).then(function (response) {
      return response.json().catch(function () { return null; }).then(function (json) {
        return {ok: response.ok, status: response.status, body: json};
      });
    }, function () { return {ok: false, status: 0, body: null}; });
  };
  DTN.errorText = function (result) {
    if (result.status === 0) return "The portal could not be reached.";
    var body = result.body || {};
    return body.error || body.detail || ("The portal answered " + result.status + ".");
  };

  // Calls tick() about every `visibleMs` while the tab is visible and every
  // `hiddenMs` while it is hidden (Page Visibility API); a tab coming back is
  // brought up to date at once. tick returns a promise; resolving to false stops.
  // visibleMs may be a function, asked before each wait (e.g. slower once finished).
  DTN.poll = function (tick, visibleMs, hiddenMs) {
    var timer = null, stopped = false, running = false;
    function schedule() {
      if (stopped) return;
      clearTimeout(timer);
      var visible = typeof visibleMs === "function" ? visibleMs() : visibleMs;
      timer = setTimeout(run, document.hidden ? Math.max(hiddenMs, visible) : visible);
    }
    function run() {
      if (stopped || running) return;
      running = true;
      Promise.resolve(tick()).then(function (goOn) {
        running = false;
        if (goOn === false) stopped = true; else schedule();
      }, function () { running = false; schedule(); });
    }
    document.addEventListener("visibilitychange", function () {
      if (!document.hidden) { clearTimeout(timer); run(); } else schedule();
    });
    run();
    return {stop: function () { stopped = true; clearTimeout(timer); }, now: run};
  };

  // --- the progress block (transfers/_progress.html) ------------------------------------------

  // Done fraction by bytes, else by files; as in portal/cli/progress.py.
  DTN.fraction = function (s) {
    if (s.state === "succeeded") return 1;
    var b = s.bytes || {}, f = s.files || {};
    if (b.total > 0) return Math.max(0, Math.min(1, ((b.transferred || 0) + (b.skipped || 0)) / b.total));
    if (f.total > 0) return Math.max(0, Math.min(1, ((f.transferred || 0) + (f.skipped || 0)) / f.total));
    return null;
  };

  function setText(root, field, text) {
    var node = root.querySelector('[data-field="' + field + '"]');
    if (node && node.textContent !== text) node.textContent = text;
  }

  DTN.renderProgress = function (root, s) {
    if (!root) return;
    var done = DTN.fraction(s), bar = root.querySelector("progress");
    var percent = done === null ? null : Math.floor(done * 100);
    if (percent === null) bar.removeAttribute("value"); else bar.value = percent;
    bar.textContent = percent === null ? "" : percent + "%";
    setText(root, "percent", percent === null ? "–" : percent + "%");
    var b = s.bytes || {}, f = s.files || {}, finished = DTN.isFinished(s.state);
    setText(root, "bytes", DTN.size((b.transferred || 0) + (b.skipped || 0)) + " of " + (b.total ? DTN.size(b.total) : "?"));
    // Bytes sent again after a stop or a lost lease: shown apart, never counted as progress.
    var resent = root.querySelector('[data-field="resent"]');
    if (resent) { resent.hidden = !b.resent; setText(root, "resent", "(+" + DTN.size(b.resent || 0) + " re-sent)"); }
    setText(root, "rate", finished ? (s.effective_speed !== null && s.effective_speed !== undefined ? DTN.rate(s.effective_speed) + " overall" : "–")
                                   : DTN.rate(s.speed));
    setText(root, "eta", finished ? "done" : (s.eta !== null && s.eta !== undefined ? "ETA " + DTN.duration(s.eta) : "ETA –"));
    setText(root, "files-done", "files " + ((f.transferred || 0) + (f.skipped || 0)) + " / " + (f.total || "?"));
  };

  DTN.renderBadge = function (badge, state) {
    if (!badge || badge.textContent === state) return;
    badge.textContent = state;
    badge.className = "badge " + state;
  };

  // --- the throughput chart ---------------------------------------------------------------------

  function svg(tag, attrs, text) {
    var node = document.createElementNS(SVG, tag);
    Object.keys(attrs).forEach(function (key) { node.setAttribute(key, attrs[key]); });
    if (text !== undefined) node.textContent = text;
    return node;
  }

  // throughput: {points: [[seconds, bytes_per_s], ...]}; stalls: [{start_s, end_s|null, message}];
  // predicted: bytes/s or null. Draws into `figure` (its <svg> is replaced); false when there is nothing to draw.
  DTN.renderChart = function (figure, throughput, stalls, predicted) {
    var points = (throughput && throughput.points) || [];
    stalls = stalls || [];
    if (!points.length && !stalls.length) return false;
    var W = 640, H = 220, left = 72, right = 12, top = 12, bottom = 30;
    var lastX = points.length ? points[points.length - 1][0] : 0;
    stalls.forEach(function (st) { lastX = Math.max(lastX, st.end_s === null || st.end_s === undefined ? st.start_s : st.end_s); });
    var maxX = Math.max(lastX, 1);
    var maxY = 0;
    points.forEach(function (p) { maxY = Math.max(maxY, p[1]); });
    if (predicted) maxY = Math.max(maxY, predicted);
    maxY = maxY > 0 ? maxY * 1.1 : 1;
    function x(v) { return left + (v / maxX) * (W - left - right); }
    function y(v) { return top + (1 - v / maxY) * (H - top - bottom); }

    var peak = 0;
    points.forEach(function (p) { peak = Math.max(peak, p[1]); });
    var summary = "Throughput over " + DTN.duration(lastX) + (points.length ? ": latest " + DTN.rate(points[points.length - 1][1]) + ", peak " + DTN.rate(peak) : "") +
      (predicted ? "; the network check predicted " + DTN.rate(predicted) : "") + "; " + stalls.length + (stalls.length === 1 ? " stall" : " stalls") + ".";
    var chart = svg("svg", {viewBox: "0 0 " + W + " " + H, role: "img", "aria-label": summary, "class": "chart"});
    chart.appendChild(svg("title", {}, summary));
    [0, 0.5, 1].forEach(function (f) {
      var v = maxY / 1.1 * f;
      chart.appendChild(svg("line", {x1: left, x2: W - right, y1: y(v), y2: y(v), "class": "grid"}));
      chart.appendChild(svg("text", {x: left - 6, y: y(v) + 4, "text-anchor": "end", "class": "tick"}, DTN.rate(v)));
    });
    [0, 0.5, 1].forEach(function (f) {
      chart.appendChild(svg("text", {x: x(maxX * f), y: H - 10, "text-anchor": f === 0 ? "start" : f === 1 ? "end" : "middle", "class": "tick"},
                            DTN.duration(maxX * f)));
    });
    stalls.forEach(function (st) {
      var end = st.end_s === null || st.end_s === undefined ? lastX : st.end_s;
      var rect = svg("rect", {x: x(st.start_s), y: top, width: Math.max(2, x(end) - x(st.start_s)), height: H - top - bottom, "class": "stall"});
      rect.appendChild(svg("title", {}, "Stall from " + DTN.duration(st.start_s) + (st.end_s === null || st.end_s === undefined ? ", still stalled" : " to " + DTN.duration(st.end_s)) + (st.message ? ": " + st.message : "")));
      chart.appendChild(rect);
    });
    if (predicted) {
      chart.appendChild(svg("line", {x1: left, x2: W - right, y1: y(predicted), y2: y(predicted), "class": "predicted"}));
      chart.appendChild(svg("text", {x: W - right - 4, y: y(predicted) - 5, "text-anchor": "end", "class": "predicted-label"}, "predicted " + DTN.rate(predicted)));
    }
    if (points.length) {
      var coords = points.map(function (p) { return x(p[0]).toFixed(1) + "," + y(p[1]).toFixed(1); }).join(" ");
      chart.appendChild(svg("polyline", {points: coords, "class": "throughput"}));
    }
    var old = figure.querySelector("svg");
    if (old) figure.replaceChild(chart, old); else figure.insertBefore(chart, figure.firstChild);
    return true;
  };

  // --- the network-check card -------------------------------------------------------------------

  var VERDICTS = {go: "Go", warn: "Go, with warnings", no_go: "No go"};

  // Fills `card` (an element) from a network-check object; false when there is none.
  DTN.renderNetworkCheck = function (card, check) {
    card.textContent = "";
    if (!check) return false;
    // Headings never skip a level (axe's heading-order): the card is a section of its page, under its h1.
    var heading = DTN.el("h2", {}, ["Network check "]);
    card.appendChild(heading);
    if (check.state === "pending") {
      heading.appendChild(DTN.el("span", {className: "badge queued", text: "checking"}));
      card.appendChild(DTN.el("p", {text: "The sender is probing the receiver; this takes up to a minute."}));
      return true;
    }
    if (check.state !== "done") {
      heading.appendChild(DTN.el("span", {className: "badge failed", text: check.state || "failed"}));
      card.appendChild(DTN.el("p", {className: "error", text: check.error || check.reason || check.summary || "The check did not finish."}));
      return true;
    }
    var verdict = check.verdict || "warn";
    heading.appendChild(DTN.el("span", {className: "badge verdict-" + verdict, text: VERDICTS[verdict] || verdict}));
    if (check.summary) card.appendChild(DTN.el("p", {text: check.summary}));
    var reasons = check.reasons || [];
    if (reasons.length) {
      card.appendChild(DTN.el("ul", {className: "reasons"}, reasons.map(function (r) {
        return DTN.el("li", {className: "level-" + r.level}, [DTN.el("strong", {text: r.level + ": "}), r.message]);
      })));
    } else if (check.reason) {
      card.appendChild(DTN.el("p", {text: check.reason}));
    }
    var facts = DTN.el("dl", {className: "facts"});
    function fact(name, value) { facts.appendChild(DTN.el("dt", {text: name})); facts.appendChild(DTN.el("dd", {text: value})); }
    var rtt = check.rtt_ms;
    if (rtt) fact("Round trip", [rtt.min, rtt.median, rtt.max].map(function (v) { return v === null || v === undefined ? "?" : Number(v).toFixed(1); }).join(" / ") + " ms (min / median / max)");
    var probe = check.probe;
    if (probe) {
      fact("Probe, one stream", DTN.rate(probe.single_stream_bytes_per_s));
      fact("Probe, " + (probe.streams || "several") + " streams", DTN.rate(probe.parallel_bytes_per_s));
      if (probe.bytes) fact("Probe size", DTN.size(probe.bytes));
    }
    if (check.predicted_bytes_per_s) {
      fact("Prediction", DTN.rate(check.predicted_bytes_per_s) + (check.predicted_seconds !== null && check.predicted_seconds !== undefined ? ", about " + DTN.duration(check.predicted_seconds) + " for this transfer" : ""));
    }
    var tuning = check.tuning;
    if (tuning && typeof tuning === "object" && Object.keys(tuning).length) {
      // The numbers only; the agent's reasons for them are in the transfer's events.
      var chosen = Object.keys(tuning).filter(function (k) {
        return typeof tuning[k] === "number" && k.indexOf("predicted") !== 0;
      }).map(function (k) {
        var v = tuning[k];
        return k.replace(/_/g, " ") + " " + (/size|cutoff|bytes/.test(k) ? DTN.size(v) : v);
      });
      if (chosen.length) fact("Settings chosen", chosen.join("; "));
    }
    var tcp = check.tcp_tuning && check.tcp_tuning.in_effect;
    if (tcp) {
      var limit = Math.min.apply(null, [tcp.tcp_rmem_max, tcp.tcp_wmem_max].filter(function (v) { return v; }));
      fact("TCP at the sender", (tcp.congestion_control || "?") + (isFinite(limit) ? ", buffers up to " + DTN.size(limit) : ""));
    }
    if (facts.childNodes.length) card.appendChild(facts);
    // What the site already has is marked applied; only the rest is advice to act on.
    var advice = check.advice || [];
    if (advice.length) {
      card.appendChild(DTN.el("h3", {text: "Advice"}));
      card.appendChild(DTN.el("ul", {className: "advice"}, advice.map(function (a) {
        var applied = a.indexOf("Applied: ") === 0;
        return DTN.el("li", {className: applied ? "applied" : "advised"}, applied
          ? [DTN.el("strong", {className: "mark", text: "applied"}), " " + a.slice(9)]
          : [DTN.el("strong", {className: "mark", text: "advised"}), " " + a]);
      })));
    }
    return true;
  };
})();
