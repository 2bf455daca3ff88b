// The developer pages' scripts (src/portal/developer.rs): the SQL editor's instant dry
// run and a model run's live progress. Both are optional: without scripts the editor's
// form posts and the page comes back with the result, and a run page has a reload link.
//
// No inline script and no inline style (the Content-Security-Policy forbids both): the
// behaviour hangs on data-* attributes the server renders.
// - <form data-dry-run-url data-dry-run-target>: the "dry run" button posts the form's
//   fields as JSON to data-dry-run-url, with the form's CSRF token in X-CSRF-Token, and
//   puts the answer's `html` (a fragment the server rendered and escaped) into the
//   element whose id is data-dry-run-target.
// - <section data-run-status-url data-run-done>: polls the status URL every second,
//   updates the <progress>, [data-run-status-text] and [data-run-stage], and reloads
//   the page once the run is done (the server then renders the output link).
(function () {
  'use strict';

  var FIELDS = ['name', 'kind', 'body', 'epsilon', 'grant_id', 'dataset_id'];
  var POLL_MS = 1000;
  var RETRY_MS = 3000;
  var MAX_FAILURES = 5;

  function csrfOf(form) {
    var field = form.querySelector('input[name="csrf"]');
    return field ? field.value : '';
  }

  function setupDryRun(form) {
    var url = form.getAttribute('data-dry-run-url');
    var target = document.getElementById(form.getAttribute('data-dry-run-target') || '');
    if (!url || !target) {
      return;
    }
    form.addEventListener('submit', function (event) {
      var submitter = event.submitter;
      // Only the dry run stays on the page; "run" posts the form as usual.
      if (!submitter || submitter.getAttribute('value') !== 'dry_run') {
        return;
      }
      event.preventDefault();
      var data = new FormData(form);
      var body = {};
      FIELDS.forEach(function (name) {
        var value = data.get(name);
        if (value !== null) {
          body[name] = String(value);
        }
      });
      submitter.disabled = true;
      target.setAttribute('aria-busy', 'true');
      target.textContent = form.getAttribute('data-label-working') || '';
      fetch(url, {
        method: 'POST',
        credentials: 'same-origin',
        headers: {
          'Content-Type': 'application/json',
          'Accept': 'application/json',
          'X-CSRF-Token': csrfOf(form)
        },
        body: JSON.stringify(body)
      })
        .then(function (response) {
          return response.json();
        })
        .then(function (answer) {
          if (answer && typeof answer.html === 'string') {
            // Rendered by the server with every value escaped (maud).
            target.innerHTML = answer.html;
          } else {
            target.textContent = form.getAttribute('data-label-failed') || '';
          }
        })
        .catch(function () {
          target.textContent = form.getAttribute('data-label-failed') || '';
        })
        .then(function () {
          submitter.disabled = false;
          target.removeAttribute('aria-busy');
        });
    });
  }

  function setupRun(section) {
    var url = section.getAttribute('data-run-status-url');
    if (!url || section.getAttribute('data-run-done') === 'true') {
      return;
    }
    var bar = section.querySelector('progress');
    var statusText = section.querySelector('[data-run-status-text]');
    var stageText = section.querySelector('[data-run-stage]');
    var failures = 0;

    function poll() {
      fetch(url, { credentials: 'same-origin', headers: { 'Accept': 'application/json' } })
        .then(function (response) {
          if (!response.ok) {
            throw new Error('HTTP ' + response.status);
          }
          return response.json();
        })
        .then(function (status) {
          failures = 0;
          if (bar && typeof status.progress === 'number') {
            bar.value = status.progress;
            bar.textContent = Math.round(status.progress * 100) + '%';
          }
          if (statusText && typeof status.status_label === 'string') {
            statusText.textContent = status.status_label;
          }
          if (stageText && typeof status.stage === 'string') {
            stageText.textContent = status.stage;
          }
          if (status.done) {
            window.location.reload();
            return;
          }
          window.setTimeout(poll, POLL_MS);
        })
        .catch(function () {
          failures += 1;
          if (failures < MAX_FAILURES) {
            window.setTimeout(poll, RETRY_MS);
          }
        });
    }

    window.setTimeout(poll, POLL_MS);
  }

  function start() {
    Array.prototype.forEach.call(document.querySelectorAll('form[data-dry-run-url]'), setupDryRun);
    Array.prototype.forEach.call(document.querySelectorAll('[data-run-status-url]'), setupRun);
  }

  if (document.readyState === 'loading') {
    document.addEventListener('DOMContentLoaded', start);
  } else {
    start();
  }
})();
