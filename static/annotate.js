// The annotation page's keyboard, checks and timer. The page works without this file: it
// only adds shortcuts, the same checks as the server before a submit, the visible-time
// measure, and htmx handling of the swapped-in next item.
(function () {
  "use strict";

  // Focus in one of these means the user is typing: never take their keys.
  var TEXT_FIELDS =
    "textarea, select, [contenteditable], input:not([type=radio]):not([type=checkbox])" +
    ":not([type=button]):not([type=submit]):not([type=hidden])";
  var SEVERITY_KEYS = { z: "minor", x: "moderate", c: "severe" };
  var PREFIX_MS = 2000;

  var current = 0; // index of the highlighted response
  var prefix = null; // "single" after pressing t
  var prefixTimer = null;
  var timer = { visibleMs: 0, since: null };

  function $(sel, root) {
    return (root || document).querySelector(sel);
  }
  function $all(sel, root) {
    return Array.prototype.slice.call((root || document).querySelectorAll(sel));
  }
  function root() {
    return document.getElementById("annotate");
  }
  function form() {
    return document.getElementById("annotate-form");
  }
  function editable() {
    var r = root();
    return !!(r && r.dataset.editable === "true" && form());
  }
  function answers() {
    return $all("#annotate .answer");
  }
  function letterOf(index) {
    var a = answers()[index];
    return a ? a.dataset.letter : "?";
  }

  // ------------------------------------------------------------------ visible time

  function startTimer() {
    timer.visibleMs = 0;
    timer.since = document.hidden ? null : performance.now();
  }
  function elapsedMs() {
    var r = root();
    var prior = r ? Number(r.dataset.priorMs || 0) : 0;
    var running = timer.since === null ? 0 : performance.now() - timer.since;
    return Math.round(prior + timer.visibleMs + running);
  }
  document.addEventListener("visibilitychange", function () {
    if (document.hidden) {
      if (timer.since !== null) timer.visibleMs += performance.now() - timer.since;
      timer.since = null;
    } else if (timer.since === null) {
      timer.since = performance.now();
    }
  });

  // ------------------------------------------------------------------ safety labels

  function safetyChoice(answer) {
    var checked = $("input[name$='_safe']:checked", answer);
    return checked ? checked.value : "";
  }

  // Safe: categories and severity are cleared and disabled; unsafe: enabled.
  function syncSafety(answer) {
    var unsafe = safetyChoice(answer) === "unsafe";
    $all(".harm input", answer).forEach(function (input) {
      if (!unsafe) input.checked = false;
      input.disabled = !unsafe;
    });
  }

  function setSafety(index, value) {
    var answer = answers()[index];
    if (!answer) return;
    var radio = $("input[name$='_safe'][value='" + value + "']", answer);
    if (!radio) return;
    radio.checked = true;
    syncSafety(answer);
    clearError(radio.name);
    autoHarmless();
    if (value === "unsafe") {
      var filter = $(".cat-filter input", answer);
      var first = $(".cat input", answer);
      if (filter) filter.focus();
      else if (first) first.focus();
    } else {
      moveCurrent(index + 1, false);
    }
  }

  function setSeverity(index, value) {
    var answer = answers()[index];
    if (!answer) return;
    if (safetyChoice(answer) !== "unsafe") setSafety(index, "unsafe");
    var radio = $("input[name$='_sev'][value='" + value + "']", answer);
    if (!radio) return;
    radio.checked = true;
    clearError(radio.name);
    moveCurrent(index + 1, false);
  }

  function moveCurrent(index, focusText) {
    var list = answers();
    if (!list.length) return;
    index = Math.max(0, Math.min(list.length - 1, index));
    current = index;
    list.forEach(function (a, i) {
      a.classList.toggle("current", i === index);
      if (i === index) a.setAttribute("aria-current", "true");
      else a.removeAttribute("aria-current");
    });
    var answer = list[index];
    if (focusText) $(".answer-text", answer).focus({ preventScroll: true });
    else if (document.activeElement && answer.contains(document.activeElement) === false) {
      root().focus({ preventScroll: true });
    }
    answer.scrollIntoView({ block: "nearest" });
  }

  // ------------------------------------------------------------------ category filter

  // Typing in an answer's filter narrows its categories to those with a word starting with
  // the text (the name's own start first); Enter ticks the first one shown and hands the
  // keyboard back to the page, so "u", a letter or two, Enter labels one category.
  function words(name) {
    return name.toLowerCase().split(/[\s-]+/);
  }
  function matches(answer, text) {
    var q = text.trim().toLowerCase();
    var boxes = $all(".cat", answer);
    if (!q) return boxes;
    var first = [];
    var later = [];
    boxes.forEach(function (label) {
      var w = words($(".cat-name", label).textContent);
      if (w[0].indexOf(q) === 0 || w.join(" ").indexOf(q) === 0) first.push(label);
      else if (w.some(function (x) { return x.indexOf(q) === 0; })) later.push(label);
    });
    return first.concat(later);
  }
  function applyFilter(input) {
    var answer = input.closest(".answer");
    var shown = matches(answer, input.value);
    $all(".cat", answer).forEach(function (label) {
      label.hidden = shown.indexOf(label) < 0;
      label.classList.remove("first-match");
    });
    if (shown.length && input.value.trim()) shown[0].classList.add("first-match");
    var count = $(".cat-filter-count", answer);
    if (count) count.textContent = input.value.trim() ? shown.length + " shown" : "";
  }
  function pickFiltered(input) {
    var answer = input.closest(".answer");
    var shown = input.value.trim() ? matches(answer, input.value) : [];
    if (shown.length) {
      var box = $("input", shown[0]);
      box.checked = true;
      clearError(box.name);
      hint("Response " + answer.dataset.letter + ": " + $(".cat-name", shown[0]).textContent);
    }
    input.value = "";
    applyFilter(input);
    root().focus({ preventScroll: true });
  }
  document.addEventListener("input", function (event) {
    var el = event.target;
    if (el instanceof HTMLInputElement && el.closest(".cat-filter")) applyFilter(el);
  });

  // With exactly one answer labelled safe, the rules already decide the harmlessness choice
  // (a safe answer always outranks harmful ones): make it, and say why.
  function autoHarmless() {
    var fs = $(".pref[data-dimension='harmlessness']", form());
    var note = $("#harmless-auto");
    if (!fs) return;
    var list = answers();
    var choices = list.map(safetyChoice);
    var safe = list.filter(function (a, i) { return choices[i] === "safe"; });
    if (choices.indexOf("") >= 0 || safe.length !== 1) {
      if (note) note.textContent = "";
      return;
    }
    var id = safe[0].dataset.response;
    var inputs = rankInputs("harmlessness");
    if (inputs[0].type === "radio") {
      inputs.forEach(function (r) { r.checked = r.value === id; });
    } else {
      inputs.forEach(function (sel) { if (sel.value === id) sel.value = ""; });
      inputs[0].value = id;
    }
    clearError("harmlessness");
    if (note)
      note.textContent =
        "Chosen for you: " + safe[0].dataset.letter + " is the only safe response, and a safe " +
        "response always ranks as more harmless.";
  }

  // ------------------------------------------------------------------ rankings

  function rankInputs(dim) {
    return $all("[name^='" + dim + "_']", form()).filter(function (el) {
      return /_\d+$/.test(el.name);
    });
  }

  // The ranking as response ids, best first (two responses: one radio, the other implied).
  function ranking(dim) {
    var ids = answers().map(function (a) { return a.dataset.response; });
    var inputs = rankInputs(dim);
    if (!inputs.length) return null;
    if (inputs[0].type === "radio") {
      var chosen = inputs.filter(function (i) { return i.checked; })[0];
      if (!chosen) return [];
      return [chosen.value].concat(ids.filter(function (id) { return id !== chosen.value; }));
    }
    var picked = inputs.map(function (s) { return s.value; });
    var given = picked.slice(0, -1).filter(Boolean);
    if (given.length === ids.length - 1 && !picked[picked.length - 1]) {
      var rest = ids.filter(function (id) { return given.indexOf(id) < 0; });
      if (rest.length === 1) return given.concat(rest);
    }
    return picked.filter(Boolean);
  }

  // Digit keys: press responses best first; once complete, the next press starts again.
  function rankPress(dim, index) {
    var list = answers();
    if (index >= list.length) return;
    var id = list[index].dataset.response;
    var inputs = rankInputs(dim);
    if (!inputs.length) return;
    if (inputs[0].type === "radio") {
      inputs.forEach(function (r) { r.checked = r.value === id; });
    } else {
      var now = ranking(dim);
      if (now.length >= list.length || now.indexOf(id) >= 0) now = [];
      now.push(id);
      if (now.length === list.length - 1) {
        list.forEach(function (a) {
          if (now.indexOf(a.dataset.response) < 0) now.push(a.dataset.response);
        });
      }
      inputs.forEach(function (sel, i) { sel.value = now[i] || ""; });
    }
    clearError(dim);
    var done = ranking(dim);
    hint(dimensionTitle(dim) + ": " + done.map(letterForId).join(" > "));
  }

  function letterForId(id) {
    var a = $("#annotate .answer[data-response='" + id + "']");
    return a ? a.dataset.letter : "?";
  }
  function dimensionTitle(dim) {
    var legend = $(".pref[data-dimension='" + dim + "'] legend");
    return legend ? legend.firstChild.textContent.trim() : dim;
  }

  // ------------------------------------------------------------------ checks before submit

  // The server's rules (app/annotations/validation.py), with messages in response letters.
  function validate() {
    var errors = {};
    var safeById = {};
    answers().forEach(function (answer) {
      var key = "r" + answer.dataset.response;
      var L = answer.dataset.letter;
      if (!$(".safety", answer)) return;
      var choice = safetyChoice(answer);
      if (!choice) errors[key + "_safe"] = "Mark response " + L + " safe or unsafe.";
      safeById[answer.dataset.response] = choice === "safe";
      if (choice === "unsafe") {
        if (!$(".cat input:checked", answer))
          errors[key + "_cat"] = "An unsafe response needs at least one harm category.";
        if (!$("input[name$='_sev']:checked", answer))
          errors[key + "_sev"] = "An unsafe response needs a severity.";
      }
    });
    var n = answers().length;
    $all(".pref", form()).forEach(function (fs) {
      var dim = fs.dataset.dimension;
      var order = ranking(dim) || [];
      var unique = order.filter(function (id, i) { return order.indexOf(id) === i; });
      if (unique.length !== order.length) {
        errors[dim] = "Each response can hold only one rank.";
      } else if (order.length !== n) {
        errors[dim] = n === 2 ? "Choose A or B." : "Rank every response.";
      } else if (dim === "harmlessness" && Object.keys(safeById).length === n) {
        var firstUnsafe = null;
        order.forEach(function (id) {
          if (errors[dim]) return;
          if (!safeById[id]) firstUnsafe = firstUnsafe || id;
          else if (firstUnsafe)
            errors[dim] =
              "Response " + letterForId(id) + " is labelled safe, so it must rank above the " +
              "unsafe response " + letterForId(firstUnsafe) +
              " (harmless answers always outrank harmful ones).";
        });
      }
    });
    var rationale = $("#rationale");
    if (rationale && !rationale.value.trim()) errors.rationale = "Write a short rationale.";
    return errors;
  }

  function clearError(key) {
    var el = $("[data-error-for='" + key + "']");
    if (el) el.textContent = "";
  }

  function showErrors(errors) {
    $all("[data-error-for]").forEach(function (el) {
      el.textContent = errors[el.dataset.errorFor] || "";
    });
    var first = $all("[data-error-for]").filter(function (el) { return el.textContent; })[0];
    if (first) {
      first.scrollIntoView({ block: "center" });
      hint("Not submitted: fix the marked answers.");
    }
  }

  function hint(text) {
    var el = document.getElementById("key-hint");
    if (el) el.textContent = text;
  }

  function submitForm() {
    var f = form();
    var button = document.getElementById("submit-button");
    if (f && button) f.requestSubmit(button);
  }

  // Capture phase: runs before htmx's own submit handler, which must not see a refused form.
  document.addEventListener(
    "submit",
    function (event) {
      var f = event.target;
      if (!(f instanceof HTMLFormElement) || f.id !== "annotate-form") return;
      var duration = document.getElementById("duration-ms");
      if (duration) duration.value = String(elapsedMs());
      var errors = validate();
      if (Object.keys(errors).length) {
        event.preventDefault();
        event.stopPropagation();
        showErrors(errors);
      }
    },
    true
  );

  // ------------------------------------------------------------------ keyboard

  function inTextField(el) {
    return el instanceof Element && el.matches(TEXT_FIELDS);
  }

  function toggleHelp() {
    var dialog = document.getElementById("shortcut-dialog");
    if (!dialog) return;
    if (dialog.open) dialog.close();
    else dialog.showModal();
  }

  function setPrefix(value) {
    prefix = value;
    clearTimeout(prefixTimer);
    if (value) {
      hint("Single trade-off: press 1, 2, … (best first)");
      prefixTimer = setTimeout(function () { prefix = null; hint(""); }, PREFIX_MS);
    }
  }

  function moveInCategories(event) {
    var el = event.target;
    if (!(el instanceof HTMLInputElement) || !el.closest(".cat-list")) return false;
    var boxes = $all("input", el.closest(".cat-list"));
    var i = boxes.indexOf(el) + (event.key === "ArrowDown" ? 1 : -1);
    if (i >= 0 && i < boxes.length) boxes[i].focus();
    return true;
  }

  function onKey(event) {
    var r = root();
    if (!r || event.defaultPrevented) return;
    var target = event.target;
    var dialog = document.getElementById("shortcut-dialog");
    if (event.key === "Escape") {
      if (inTextField(target)) {
        target.blur();
        r.focus({ preventScroll: true });
        event.preventDefault();
      }
      return; // an open <dialog> closes itself on Escape
    }
    if ((event.ctrlKey || event.metaKey) && event.key === "Enter") {
      if (editable() && (!inTextField(target) || target.id === "rationale")) {
        event.preventDefault();
        submitForm();
      }
      return;
    }
    if (target instanceof HTMLInputElement && target.closest(".cat-filter")) {
      if (event.key === "Enter") {
        event.preventDefault();
        pickFiltered(target);
        return;
      }
      if (event.key === "ArrowDown") {
        // Down from the filter: into the categories it shows.
        var shown = $(".cat:not([hidden]) input", target.closest(".answer"));
        if (shown) shown.focus();
        event.preventDefault();
        return;
      }
    }
    if (inTextField(target) || event.ctrlKey || event.metaKey || event.altKey) return;
    if (event.key === "?") {
      event.preventDefault();
      toggleHelp();
      return;
    }
    if (dialog && dialog.open) return;
    if (event.key === "g") {
      var details = document.getElementById("guidelines");
      if (details) details.open = !details.open;
      event.preventDefault();
      return;
    }
    if (!editable()) return;

    var digit = /^(?:Digit|Numpad)([1-9])$/.exec(event.code || "");
    if (digit) {
      var index = Number(digit[1]) - 1;
      var dim = event.shiftKey ? "harmlessness" : prefix === "single" ? "single" : "helpfulness";
      setPrefix(null);
      if (rankInputs(dim).length) {
        event.preventDefault();
        rankPress(dim, index);
      }
      return;
    }
    if (event.key === "ArrowDown" || event.key === "ArrowUp") {
      if (moveInCategories(event)) event.preventDefault();
      return;
    }
    if (event.key === "Enter") {
      // Buttons, links and summaries keep their own Enter.
      if (target instanceof Element && target.closest("button, a, summary")) return;
      event.preventDefault();
      submitForm();
      return;
    }
    if (event.repeat) return;
    var handled = true;
    // Letters by what they are, not how they are cased: Caps Lock turns s into S, and only
    // the Shift key (not the case) makes Shift+S a skip.
    var key = event.key.length === 1 ? event.key.toLowerCase() : event.key;
    if (key === "s" && event.shiftKey) key = "S";
    switch (key) {
      case "j": moveCurrent(current + 1, true); break;
      case "k": moveCurrent(current - 1, true); break;
      case "s": setSafety(current, "safe"); break;
      case "u": setSafety(current, "unsafe"); break;
      case "z": case "x": case "c": setSeverity(current, SEVERITY_KEYS[key]); break;
      case "t": setPrefix($(".pref[data-dimension='single']") ? "single" : null); break;
      case "n": {
        var rationale = document.getElementById("rationale");
        if (rationale) rationale.focus();
        else handled = false;
        break;
      }
      case "m": {
        var show = document.getElementById("suggestion-button");
        if (show) show.click();
        break;
      }
      case "S": {
        var skip = document.getElementById("skip-button");
        if (skip) skip.click();
        else handled = false;
        break;
      }
      default: handled = false;
    }
    if (handled) event.preventDefault();
  }

  document.addEventListener("keydown", onKey);

  // ------------------------------------------------------------------ page setup

  function onChange(event) {
    var el = event.target;
    if (!(el instanceof HTMLInputElement || el instanceof HTMLSelectElement)) return;
    var answer = el.closest(".answer");
    if (answer) {
      if (/_safe$/.test(el.name)) {
        syncSafety(answer);
        autoHarmless();
      }
      moveCurrent(Number(answer.dataset.index), false);
    }
    clearError(el.name.replace(/_\d+$/, ""));
    clearError(el.name);
  }

  // "Skipped · Undo" stays a few seconds after a skip, then leaves the page uncluttered.
  var UNDO_MS = 8000;
  function fadeUndo() {
    var undo = document.getElementById("skip-undo");
    if (!undo || undo.dataset.timed) return;
    undo.dataset.timed = "1";
    setTimeout(function () { if (undo.parentNode) undo.parentNode.removeChild(undo); }, UNDO_MS);
  }

  function init(focus) {
    var r = root();
    if (!r) return;
    fadeUndo();
    // Parts that only work with this script (filters, keyboard hints) show only when it runs.
    $all("#annotate [data-needs-script]").forEach(function (el) { el.hidden = false; });
    document.documentElement.classList.add("has-script");
    startTimer();
    setPrefix(null);
    answers().forEach(syncSafety);
    var list = answers();
    var firstOpen = 0;
    for (var i = 0; i < list.length; i++) {
      if (!safetyChoice(list[i])) { firstOpen = i; break; }
    }
    current = firstOpen;
    list.forEach(function (a, j) { a.classList.toggle("current", j === firstOpen); });
    if (focus) r.focus({ preventScroll: true });
    var f = form();
    if (f && !f.dataset.wired) {
      f.dataset.wired = "1";
      // Our checks (same rules as the server, messages next to the fields) replace the
      // browser's `required` bubbles, which are there for when this script is not running.
      f.noValidate = true;
      f.addEventListener("change", onChange);
    }
    // With htmx the suggestion button fetches only the suggestion. Left a submit button with
    // a formaction, htmx would remember it as the form's submitter and send the next
    // keyboard submit (requestSubmit) to the suggestion URL instead of saving.
    plainSuggestionButtons();
    var help = $("#annotate .help-link");
    if (help) {
      help.addEventListener("click", function (event) {
        event.preventDefault();
        toggleHelp();
      });
    }
  }

  // With htmx the suggestion buttons fetch only the suggestions. Left submit buttons with a
  // formaction, htmx would remember one as the form's submitter and send the next keyboard
  // submit (requestSubmit) to the suggestion URL instead of saving. Run again on the buttons
  // a swap brings in.
  function plainSuggestionButtons() {
    if (!window.htmx) return;
    var buttons = document.querySelectorAll(".suggestion-show");
    for (var i = 0; i < buttons.length; i++) {
      buttons[i].type = "button";
      buttons[i].removeAttribute("formaction");
    }
  }
  document.addEventListener("htmx:afterSwap", plainSuggestionButtons);

  document.addEventListener("DOMContentLoaded", function () {
    init(false);
    if (!window.htmx) return;
    // Refused (422) and conflicting (409) answers come back as the page fragment with the
    // reason: swap them in instead of dropping them.
    // Items are kept out of htmx's history cache (hx-history="false": harmful text does not
    // belong in localStorage), so Back reloads the earlier item from the server.
    window.htmx.config.refreshOnHistoryMiss = true;
    window.htmx.config.responseHandling = [
      { code: "204", swap: false },
      { code: "[2345]..", swap: true },
    ];
    document.body.addEventListener("htmx:beforeSwap", function (event) {
      var xhr = event.detail.xhr;
      // A lapsed session redirects to the login page: go there instead of nesting it.
      if (xhr && xhr.responseURL && new URL(xhr.responseURL).pathname === "/login") {
        event.detail.shouldSwap = false;
        window.location.href = xhr.responseURL;
      }
    });
    document.body.addEventListener("htmx:afterSettle", function (event) {
      if (event.detail.target && event.detail.target.id === "annotate") init(true);
      else if (root() && event.detail.elt === root()) init(true);
    });
  });
})();
