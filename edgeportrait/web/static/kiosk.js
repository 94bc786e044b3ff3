// The kiosk page: live preview, capture button, countdown, review, plain-words status.
// No framework and nothing from outside the booth; events come from /events (SSE).
(function () {
  "use strict";
  var $ = function (id) { return document.getElementById(id); };
  var live = $("live"), button = $("capture"), countdown = $("countdown"), number = $("countdown-number");
  var flash = $("flash"), review = $("review"), reviewImage = $("review-image");
  var statusBox = $("status"), messageBox = $("message");

  var state = { review_s: 5, countdown_s: 0, capture_allowed: true, message: "" };
  // what the page says when the daemon's status carries no words of its own
  var CAMERA_WORDS = {
    offline: "The camera is offline — reconnecting…",
    stalled: "The camera has stopped sending pictures — reconnecting…"
  };
  var mine = {};            // ids of captures this page asked for (their errors are shown here)
  var counting = null;      // {id, deadline, timer} while a countdown runs
  var reviewTimer = null, messageTimer = null, streamRetry = null, eventsRetry = null;
  var linkDown = false;     // the event stream is reconnecting
  var streamDown = false;

  // A start URL with ?token=… set the page's cookie; keep the token out of the address bar.
  if (window.location.search) {
    window.history.replaceState(null, "", window.location.pathname);
  }

  // -- the live stream ---------------------------------------------------------------
  function startStream() {
    window.clearTimeout(streamRetry);
    live.src = "/stream.mjpg?t=" + Date.now();  // a new URL: a new connection, not the cache
  }
  live.addEventListener("load", function () {
    if (streamDown) { streamDown = false; showStatus(); }
  });
  live.addEventListener("error", function () {
    streamDown = true;
    showStatus();
    window.clearTimeout(streamRetry);
    streamRetry = window.setTimeout(startStream, 2000);
  });

  // -- status in plain words ---------------------------------------------------------------
  function showStatus() {
    var text = "";
    if (linkDown) {
      text = "Reconnecting to the booth…";
    } else if (state.message) {
      text = state.message;
    } else if (state.camera && state.camera !== "ok") {
      text = CAMERA_WORDS[state.camera] || "The camera is not working — reconnecting…";
    } else if (streamDown) {
      text = "Reconnecting to the camera…";
    } else if (state.fallback) {
      text = state.fallback;
    }
    statusBox.textContent = text;
    statusBox.hidden = !text;
    button.hidden = state.capture_allowed === false;
    updateButton();
  }

  function showMessage(text) {
    messageBox.textContent = text;
    messageBox.hidden = false;
    window.clearTimeout(messageTimer);
    messageTimer = window.setTimeout(function () { messageBox.hidden = true; }, 4000);
  }

  function updateButton() {
    var busy = !!counting || !review.hidden;
    button.disabled = busy || linkDown;
    button.classList.toggle("away", busy);  // nothing in front of the faces while they pose and look
  }

  // -- countdown, flash, review ---------------------------------------------------------------
  function startCountdown(ev) {
    stopCountdown();
    var seconds = Math.max(0, Number(ev.seconds) || 0);
    counting = { id: ev.id, deadline: Date.now() + seconds * 1000, timer: null };
    hideReview();
    countdown.hidden = false;
    var tick = function () {
      var left = Math.ceil((counting.deadline - Date.now()) / 1000);
      if (left > 0) {
        countdown.classList.remove("smile");
        number.textContent = String(left);
      } else {
        countdown.classList.add("smile");
        number.textContent = "Smile!";
        window.clearInterval(counting.timer);
        // the portrait event ends it; if none comes, do not block the booth
        counting.timer = window.setTimeout(stopCountdown, 20000);
      }
    };
    tick();
    if (seconds > 0) { counting.timer = window.setInterval(tick, 100); }
    updateButton();
  }

  function stopCountdown() {
    if (counting) {
      window.clearInterval(counting.timer);
      window.clearTimeout(counting.timer);
    }
    counting = null;
    countdown.hidden = true;
    countdown.classList.remove("smile");
    updateButton();
  }

  function showPortrait(ev) {
    stopCountdown();
    flash.hidden = true;
    void flash.offsetWidth;  // restart the animation
    flash.hidden = false;
    var seconds = Number(state.review_s) || 0;
    if (seconds <= 0) { return; }
    reviewImage.onload = function () {
      review.hidden = false;
      updateButton();
      window.clearTimeout(reviewTimer);
      reviewTimer = window.setTimeout(hideReview, seconds * 1000);
    };
    reviewImage.onerror = function () { hideReview(); };
    reviewImage.src = "/latest.jpg?seq=" + encodeURIComponent(String(ev.seq));
  }

  function hideReview() {
    window.clearTimeout(reviewTimer);
    review.hidden = true;
    updateButton();
  }

  // -- capture button ----------------------------------------------------------------------
  button.addEventListener("click", function () {
    if (button.disabled) { return; }
    button.disabled = true;
    window.fetch("/capture", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: "{}",
      credentials: "same-origin",
      cache: "no-store"
    }).then(function (r) {
      return r.json().catch(function () { return {}; }).then(function (body) {
        if (r.status === 202 && body.id) {
          mine[body.id] = true;
        } else {
          showMessage(body.detail || ("The booth said " + r.status));
        }
      });
    }).catch(function () {
      showMessage("The booth cannot be reached");
    }).then(updateButton);
  });

  // -- events --------------------------------------------------------------------------------
  function parse(e) {
    try { return JSON.parse(e.data); } catch (err) { return null; }
  }

  function connectEvents() {
    window.clearTimeout(eventsRetry);
    var es = new EventSource("/events");
    es.addEventListener("open", function () {
      if (linkDown) {
        linkDown = false;
        startStream();  // the server may have restarted: the old stream is gone too
      }
      showStatus();
    });
    es.addEventListener("status", function (e) {
      var s = parse(e);
      if (s) { state = s; showStatus(); }
    });
    es.addEventListener("countdown", function (e) {
      var ev = parse(e);
      if (ev) { startCountdown(ev); }
    });
    es.addEventListener("portrait", function (e) {
      var ev = parse(e);
      if (ev) { showPortrait(ev); }
    });
    // "error" is both the server's capture errors (a MessageEvent with data) and the
    // EventSource's own connection errors (a plain Event)
    es.addEventListener("error", function (e) {
      if (e.data !== undefined) {
        var ev = parse(e);
        if (ev && (mine[ev.id] || (counting && counting.id === ev.id))) {
          stopCountdown();
          showMessage(ev.detail || "The portrait could not be taken");
        }
        return;
      }
      linkDown = true;
      showStatus();
      if (es.readyState === EventSource.CLOSED) {
        // the browser gave up (the server answered with an error): start over
        eventsRetry = window.setTimeout(connectEvents, 3000);
      }
    });
  }

  showStatus();
  startStream();
  connectEvents();
})();
