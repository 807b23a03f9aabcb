// caas web console: the little JavaScript the pages need. No inline scripts anywhere (the
// Content-Security-Policy forbids them); pages pass data in data- attributes of <body>.
'use strict';

(function () {
  var body = document.body;

  // Forms that change something ask first.
  Array.prototype.forEach.call(document.querySelectorAll('form[data-confirm]'), function (form) {
    form.addEventListener('submit', function (ev) {
      if (!window.confirm(form.dataset.confirm)) {
        ev.preventDefault();
      }
    });
  });

  // The API's JSON error, or the status line.
  function errorText(response) {
    return response.text().then(function (text) {
      try {
        var body = JSON.parse(text);
        if (response.status === 401) {
          return 'your session ended: log in again';
        }
        return body.message || (response.status + ' ' + response.statusText);
      } catch (e) {
        return response.status + ' ' + response.statusText;
      }
    });
  }

  // ---- Logs: a source selector and the chosen stream, followed live. ----
  function logs() {
    var select = document.getElementById('log-source');
    var reload = document.getElementById('log-reload');
    var out = document.getElementById('log-output');
    var status = document.getElementById('log-status');
    if (!select || !out) {
      return;
    }
    // The page keeps the last 200 KB of text.
    var MAX = 200 * 1024;
    var text = '';
    var scheduled = false;
    var controller = null;
    var generation = 0;

    function render() {
      scheduled = false;
      var atBottom = out.scrollTop + out.clientHeight >= out.scrollHeight - 8;
      out.textContent = text;
      if (atBottom) {
        out.scrollTop = out.scrollHeight;
      }
    }

    function append(chunk) {
      if (!chunk) {
        return;
      }
      text += chunk;
      if (text.length > MAX) {
        var cut = text.length - MAX;
        var newline = text.indexOf('\n', cut);
        if (newline !== -1 && newline - cut < 4096) {
          cut = newline + 1;
        }
        text = text.slice(cut);
      }
      if (!scheduled) {
        scheduled = true;
        window.setTimeout(render, 50);
      }
    }

    function follow() {
      if (controller) {
        controller.abort();
      }
      var mine = ++generation;
      controller = new AbortController();
      var file = select.value;
      text = '';
      render();
      var params = new URLSearchParams({ follow: 'true', tail: '200' });
      if (file) {
        params.set('file', file);
      }
      var label = file ? file : 'app stdout/stderr';
      status.textContent = 'connecting to ' + label + '…';
      fetch(body.dataset.logsUrl + '?' + params.toString(), {
        signal: controller.signal,
        credentials: 'same-origin',
        headers: { 'Accept': 'text/plain' }
      }).then(function (response) {
        if (!response.ok) {
          return errorText(response).then(function (message) {
            status.textContent = label + ': ' + message;
          });
        }
        status.textContent = 'following ' + label;
        var reader = response.body.getReader();
        var decoder = new TextDecoder('utf-8');
        function pump() {
          return reader.read().then(function (step) {
            if (mine !== generation) {
              return undefined;
            }
            if (step.done) {
              append(decoder.decode());
              status.textContent = label + ': the stream ended (the container stopped or its node went away); Reload to read again';
              return undefined;
            }
            append(decoder.decode(step.value, { stream: true }));
            return pump();
          });
        }
        return pump();
      }).catch(function (e) {
        if (e.name !== 'AbortError' && mine === generation) {
          status.textContent = label + ': the stream failed: ' + e.message;
        }
      });
    }

    function loadFiles() {
      return fetch(body.dataset.filesUrl, { credentials: 'same-origin' }).then(function (response) {
        if (!response.ok) {
          return errorText(response).then(function (message) {
            status.textContent = 'log files: ' + message;
          });
        }
        return response.json().then(function (files) {
          var current = select.value;
          while (select.options.length > 1) {
            select.remove(1);
          }
          files.forEach(function (f) {
            var option = document.createElement('option');
            option.value = f.name;
            option.textContent = f.name + ' (' + f.size + ' bytes)';
            select.appendChild(option);
          });
          select.value = current;
          if (select.value !== current) {
            select.value = '';
          }
          select.dataset.loaded = 'true';
        });
      }).catch(function (e) {
        status.textContent = 'log files: ' + e.message;
      });
    }

    select.addEventListener('change', follow);
    reload.addEventListener('click', function () {
      loadFiles().then(follow);
    });
    window.addEventListener('pagehide', function () {
      if (controller) {
        controller.abort();
      }
    });
    loadFiles();
    follow();
  }

  // ---- Terminal: xterm.js over the console's WebSocket (caas_api::terminal protocol). ----
  function terminal() {
    var box = document.getElementById('terminal');
    var status = document.getElementById('terminal-status');
    var X = window.CaasXterm;
    if (!box) {
      return;
    }
    if (!X || !X.Terminal) {
      status.textContent = 'xterm.js did not load; the terminal cannot be shown.';
      status.className = 'error';
      return;
    }
    var term = new X.Terminal({
      cursorBlink: true,
      fontSize: 14,
      scrollback: 5000,
      // Rows are mirrored into the DOM for screen readers (and can be read by tests).
      screenReaderMode: true
    });
    term.open(box);
    window.caasTerminal = term;

    function fit() {
      try {
        if (X.fit && X.fit.fit) {
          X.fit.fit(term);
        }
      } catch (e) {
        // Keep the size it has.
      }
    }
    fit();

    var scheme = window.location.protocol === 'https:' ? 'wss:' : 'ws:';
    var socket = new WebSocket(scheme + '//' + window.location.host + body.dataset.wsPath);
    socket.binaryType = 'arraybuffer';
    var encoder = new TextEncoder();
    var decoder = new TextDecoder('utf-8');
    var ended = false;

    function send(message) {
      if (socket.readyState === WebSocket.OPEN) {
        socket.send(message);
      }
    }

    socket.addEventListener('open', function () {
      fit();
      send(JSON.stringify({ start: { cols: term.cols, rows: term.rows } }));
      status.textContent = 'starting…';
    });
    socket.addEventListener('message', function (ev) {
      if (typeof ev.data !== 'string') {
        term.write(decoder.decode(new Uint8Array(ev.data), { stream: true }));
        return;
      }
      var message;
      try {
        message = JSON.parse(ev.data);
      } catch (e) {
        return;
      }
      if (message.started) {
        status.textContent = 'connected (session ' + message.started.session + ')';
        box.dataset.session = message.started.session;
        term.focus();
      } else if (message.exit) {
        ended = true;
        status.textContent = 'the shell exited with code ' + message.exit.code + '; reload the page for a new one';
        term.write('\r\n[exited with code ' + message.exit.code + ']\r\n');
      } else if (message.error) {
        ended = true;
        status.textContent = 'ended: ' + message.error.message;
        status.className = 'error';
      }
    });
    socket.addEventListener('close', function () {
      if (!ended) {
        status.textContent = 'disconnected; reload the page to reconnect';
      }
    });
    socket.addEventListener('error', function () {
      if (!ended) {
        status.textContent = 'the connection failed (logged out, refused, or central unreachable)';
        status.className = 'error';
      }
    });

    function onData(data) {
      send(encoder.encode(data));
    }
    function onResize(size) {
      send(JSON.stringify({ resize: { cols: size.cols, rows: size.rows } }));
    }
    if (typeof term.onData === 'function') {
      term.onData(onData);
      term.onResize(onResize);
    } else {
      term.on('data', onData);
      term.on('resize', onResize);
    }

    var pending = null;
    window.addEventListener('resize', function () {
      window.clearTimeout(pending);
      pending = window.setTimeout(fit, 100);
    });
    term.focus();
  }

  if (body.dataset.page === 'container') {
    logs();
  } else if (body.dataset.page === 'terminal') {
    terminal();
  }
}());
