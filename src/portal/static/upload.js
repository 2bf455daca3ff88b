// Upload of a dataset version with a progress bar (the provider's upload page).
//
// The page's form carries `data-upload`; this script (loaded with `defer`, no inline
// JavaScript: the Content-Security-Policy forbids it) sends the chosen file as the raw
// request body with XMLHttpRequest, so that `upload.onprogress` can drive the
// <progress> element. The body is the file itself, so the form's CSRF token travels in
// the `X-CSRF-Token` header. The portal streams the body to the API, which answers 202
// with the ingest job; the script then polls the job through the portal until the
// version is de-identified and certified, and links to its report. Every text shown
// comes from the form's `data-msg-*` attributes (the page's language); API details are
// set as text, never as HTML.
(function () {
  'use strict';

  if (window.pdxUploadLoaded) {
    return;
  }
  window.pdxUploadLoaded = true;

  var POLL_MS = 500;

  function setText(el, text) {
    if (el) {
      el.textContent = text;
    }
  }

  function parseJson(text) {
    try {
      return JSON.parse(text);
    } catch (e) {
      return null;
    }
  }

  function bind(form) {
    if (form.getAttribute('data-upload-bound') === '1') {
      return;
    }
    form.setAttribute('data-upload-bound', '1');
    var msg = form.dataset;
    var fileInput = form.querySelector('input[type=file]');
    var bar = form.querySelector('progress');
    var status = form.querySelector('[data-upload-status]');
    var result = form.querySelector('[data-upload-result]');
    var button = form.querySelector('button[type=submit]');

    function field(name) {
      var el = form.elements.namedItem(name);
      return el && typeof el.value === 'string' ? el.value.trim() : '';
    }

    function showProgress(done, total) {
      if (!bar) {
        return;
      }
      bar.max = total > 0 ? total : 1;
      bar.value = Math.min(done, bar.max);
      var pct = total > 0 ? Math.round((done / total) * 100) : 0;
      bar.textContent = pct + '%';
      return pct;
    }

    function finish(failed, text) {
      if (button) {
        button.disabled = false;
      }
      form.removeAttribute('aria-busy');
      setText(status, text);
      if (failed && status) {
        status.classList.add('error');
      }
    }

    function refused(httpStatus, detail) {
      var text = msg.msgFailed + ' (HTTP ' + httpStatus + ')';
      if (detail) {
        text += ': ' + detail;
      }
      finish(true, text);
    }

    function showReport(job) {
      showProgress(1, 1);
      var text = msg.msgDone;
      if (job.certificate_no) {
        text += ': ' + job.certificate_no;
      }
      finish(false, text);
      if (result && job.report_url) {
        var link = document.createElement('a');
        link.href = job.report_url;
        link.textContent = msg.msgReport;
        result.textContent = '';
        result.appendChild(link);
      }
    }

    function poll(jobId) {
      var url = msg.jobUrl + encodeURIComponent(jobId);
      fetch(url, {
        credentials: 'same-origin',
        headers: { Accept: 'application/json' }
      })
        .then(function (response) {
          return response.text().then(function (text) {
            return { status: response.status, ok: response.ok, body: parseJson(text) };
          });
        })
        .then(function (answer) {
          var job = answer.body;
          if (!answer.ok || !job) {
            refused(answer.status, job && job.detail);
            return;
          }
          if (job.status === 'succeeded') {
            showReport(job);
          } else if (job.status === 'failed') {
            refused(job.error_status || 422, job.error);
          } else {
            showProgress(job.progress || 0, 1);
            setText(
              status,
              msg.msgProcessing + ': ' + (job.stage || job.status_label || '') +
                ' ' + Math.round((job.progress || 0) * 100) + '%'
            );
            window.setTimeout(function () { poll(jobId); }, POLL_MS);
          }
        })
        .catch(function () {
          finish(true, msg.msgNetwork);
        });
    }

    form.addEventListener('submit', function (event) {
      event.preventDefault();
      var file = fileInput && fileInput.files && fileInput.files[0];
      if (!file) {
        finish(true, msg.msgChoose);
        return;
      }
      if (status) {
        status.classList.remove('error');
      }
      if (result) {
        result.textContent = '';
      }
      var params = new URLSearchParams();
      var format = field('format') || 'csv';
      params.set('format', format);
      if (format === 'csv') {
        // Delimiter and encoding apply to CSV only (the API refuses them otherwise).
        if (field('delimiter')) {
          params.set('delimiter', field('delimiter'));
        }
        if (field('encoding')) {
          params.set('encoding', field('encoding'));
        }
      }
      if (field('corrects')) {
        params.set('corrects', field('corrects'));
      }
      var xhr = new XMLHttpRequest();
      xhr.open('POST', msg.uploadUrl + '?' + params.toString());
      xhr.setRequestHeader('X-CSRF-Token', field('csrf'));
      xhr.setRequestHeader('Content-Type', file.type || 'application/octet-stream');
      xhr.setRequestHeader('Accept', 'application/json');
      xhr.upload.onprogress = function (e) {
        if (e.lengthComputable) {
          var pct = showProgress(e.loaded, e.total);
          setText(status, msg.msgUploading + ' ' + pct + '%');
        }
      };
      xhr.onload = function () {
        var body = parseJson(xhr.responseText);
        if (xhr.status === 202 && body && body.id) {
          setText(status, msg.msgProcessing);
          showProgress(0, 1);
          poll(body.id);
        } else {
          refused(xhr.status, body && body.detail);
        }
      };
      xhr.onerror = function () {
        finish(true, msg.msgNetwork);
      };
      if (button) {
        button.disabled = true;
      }
      form.setAttribute('aria-busy', 'true');
      showProgress(0, file.size);
      setText(status, msg.msgUploading + ' 0%');
      xhr.send(file);
    });
  }

  function init() {
    var forms = document.querySelectorAll('form[data-upload]');
    for (var i = 0; i < forms.length; i += 1) {
      bind(forms[i]);
    }
  }

  if (document.readyState === 'loading') {
    document.addEventListener('DOMContentLoaded', init);
  } else {
    init();
  }
}());
