// tether: progressive enhancement for the server-rendered pages.
//
// Everything here is optional: without JavaScript every form posts and the server redirects.
// The Content-Security-Policy forbids inline script, eval and inline styles, so this file only
// toggles attributes and classes, and writes user-typed text with textContent, never innerHTML.

(function () {
  'use strict';

  function csrfToken() {
    var meta = document.querySelector('meta[name="csrf-token"]');
    return (meta && meta.getAttribute('content')) || '';
  }

  function text(value) {
    return value == null ? '' : String(value);
  }

  function each(selector, root, fn) {
    Array.prototype.forEach.call((root || document).querySelectorAll(selector), fn);
  }

  // ---- Live region ----------------------------------------------------------------------

  var announceTimer = null;

  function announce(message) {
    var region = document.querySelector('[data-live-region]');
    if (!region) return;
    // Clear first, then write on the next tick, so the same message twice is still announced.
    region.textContent = '';
    window.clearTimeout(announceTimer);
    announceTimer = window.setTimeout(function () {
      region.textContent = message;
    }, 100);
  }

  // ---- Switcher dropdown (<details data-switcher>) --------------------------------------

  function summaryOf(details) {
    return details.querySelector('summary');
  }

  function closeSwitcher(details, returnFocus) {
    if (!details.open) return;
    details.open = false;
    if (returnFocus) {
      var summary = summaryOf(details);
      if (summary) summary.focus();
    }
  }

  function openSwitchers() {
    return Array.prototype.filter.call(
      document.querySelectorAll('details[data-switcher]'),
      function (d) { return d.open; }
    );
  }

  function switcherOptions(details) {
    return Array.prototype.slice.call(details.querySelectorAll('.switcher__list button'));
  }

  document.addEventListener('keydown', function (event) {
    if (event.key === 'Escape' || event.key === 'Esc') {
      openSwitchers().forEach(function (details) {
        var active = document.activeElement;
        var focusInside = active && details.contains(active);
        var focusNowhere = !active || active === document.body;
        closeSwitcher(details, focusInside || focusNowhere);
        event.preventDefault();
      });
      return;
    }

    // Arrow keys move between the options of an open switcher (Tab works too).
    if (event.key !== 'ArrowDown' && event.key !== 'ArrowUp' &&
        event.key !== 'Home' && event.key !== 'End') return;
    var target = event.target;
    if (!(target instanceof Element)) return;
    var details = target.closest('details[data-switcher]');
    if (!details || !details.open) return;
    var options = switcherOptions(details);
    if (!options.length) return;
    var index = options.indexOf(target);
    var next;
    if (event.key === 'Home') next = 0;
    else if (event.key === 'End') next = options.length - 1;
    else if (index === -1) {
      // From the summary: go to the current option, or the first.
      var current = options.filter(function (b) {
        return b.getAttribute('aria-current') === 'true';
      })[0];
      next = event.key === 'ArrowUp' ? options.length - 1 : options.indexOf(current || options[0]);
    } else if (event.key === 'ArrowDown') next = (index + 1) % options.length;
    else next = (index - 1 + options.length) % options.length;
    event.preventDefault();
    options[next].focus();
  });

  // A click anywhere outside an open switcher closes it.
  document.addEventListener('click', function (event) {
    openSwitchers().forEach(function (details) {
      if (!details.contains(event.target)) closeSwitcher(details, false);
    });
  });

  // Tabbing out of an open switcher closes it too, so it never hangs over the page.
  document.addEventListener('focusout', function (event) {
    var details = event.target instanceof Element && event.target.closest('details[data-switcher]');
    if (!details || !details.open) return;
    var next = event.relatedTarget;
    if (next && !details.contains(next)) closeSwitcher(details, false);
  });

  // ---- Switching platforms --------------------------------------------------------------

  function applySwitch(platform) {
    var id = text(platform.id);
    var name = text(platform.name);

    each('[data-active-name]', document, function (el) {
      el.textContent = name;
    });

    each('form[data-switch-form]', document, function (form) {
      var current = form.getAttribute('data-platform-id') === id;
      each('button', form, function (button) {
        if (current) button.setAttribute('aria-current', 'true');
        else button.removeAttribute('aria-current');
      });
    });

    each('details[data-switcher]', document, function (details) {
      closeSwitcher(details, true);
    });

    // A server-rendered message from before the switch (say, "Now working with X.") is stale.
    // The live region below carries the new announcement.
    each('.flash', document, function (flash) {
      if (flash.parentNode) flash.parentNode.removeChild(flash);
    });

    announce('Now working with ' + name + '.');

    // Pages about one account's content show the other account's after a reload; the
    // dashboard's account regions are fetched again and replaced whole.
    var scoped = document.querySelector('[data-reload-on-switch]');
    if (scoped) {
      window.location.assign(scoped.getAttribute('data-reload-on-switch') || window.location.pathname);
      return;
    }
    refreshRegions();
  }

  // Every region marked data-refresh-on-switch is replaced by the same region of the page as
  // the server renders it now, so no part of it can still show the previous account (its
  // avatar, counts, reconnect notice). The server's HTML is parsed inert and imported; if
  // anything goes wrong the page is simply loaded again.
  function refreshRegions() {
    var regions = document.querySelectorAll('[data-refresh-on-switch][id]');
    if (!regions.length) return;
    var here = window.location.href;
    fetch(here, { credentials: 'same-origin', headers: { Accept: 'text/html' } })
      .then(function (response) {
        if (!response.ok || response.redirected) throw new Error('page moved');
        return response.text();
      })
      .then(function (html) {
        var fresh = new DOMParser().parseFromString(html, 'text/html');
        Array.prototype.forEach.call(regions, function (region) {
          var next = fresh.getElementById(region.id);
          if (!next || !next.hasAttribute('data-refresh-on-switch')) throw new Error('region gone');
          region.replaceWith(document.importNode(next, true));
        });
        startAuditPolling();
      })
      .catch(function () {
        window.location.assign(here);
      });
  }

  // The server path: a normal POST that redirects and shows its own message.
  // form.submit() does not fire "submit" again, so this cannot loop.
  function submitNormally(form) {
    HTMLFormElement.prototype.submit.call(form);
  }

  function loginUrl() {
    return '/login?next=' + encodeURIComponent(window.location.pathname + window.location.search);
  }

  function switchPlatform(form) {
    var id = Number(form.getAttribute('data-platform-id'));
    form.setAttribute('aria-busy', 'true');

    function done() {
      form.removeAttribute('aria-busy');
    }

    return fetch('/api/switch_platform', {
      method: 'POST',
      credentials: 'same-origin',
      headers: {
        'Content-Type': 'application/json',
        'X-CSRF-Token': csrfToken(),
        'Accept': 'application/json'
      },
      body: JSON.stringify({ platform_id: id })
    }).then(function (response) {
      if (response.status === 401) {
        window.location.assign(loginUrl());
        return;
      }
      if (!response.ok) {
        submitNormally(form);
        return;
      }
      return response.json().then(function (data) {
        if (!data || data.success !== true || !data.platform) {
          submitNormally(form);
          return;
        }
        done();
        applySwitch(data.platform);
      });
    }).catch(function () {
      // Network failure or unreadable answer: let the server handle it.
      submitNormally(form);
    });
  }

  document.addEventListener('submit', function (event) {
    var form = event.target;
    if (!(form instanceof HTMLFormElement) || event.defaultPrevented) return;

    if (form.hasAttribute('data-confirm')) {
      if (!window.confirm(form.getAttribute('data-confirm'))) {
        event.preventDefault();
        return;
      }
    }

    if (form.hasAttribute('data-switch-form') && typeof window.fetch === 'function') {
      var id = Number(form.getAttribute('data-platform-id'));
      if (!Number.isInteger(id) || id <= 0) return; // leave it to the normal POST
      event.preventDefault();
      if (form.getAttribute('aria-busy') === 'true') return; // already on its way
      switchPlatform(form);
    }
  });

  // ---- Alt-text audit ---------------------------------------------------------------------

  // Live character counts next to description fields; the server enforces the limit.
  function updateCount(area) {
    var hint = document.querySelector('[data-count-for="' + area.id + '"]');
    var limit = Number(area.getAttribute('data-limit'));
    if (!hint || !(limit > 0)) return;
    var used = Array.from(area.value.trim()).length;
    var over = used - limit;
    hint.textContent = over > 0
      ? used + ' of ' + limit + ' characters: ' + over + ' too many.'
      : used + ' of ' + limit + ' characters.';
    hint.classList.toggle('field__hint--over', over > 0);
  }

  each('textarea[data-limit]', document, updateCount);
  document.addEventListener('input', function (event) {
    var area = event.target;
    if (area instanceof HTMLTextAreaElement && area.hasAttribute('data-limit')) {
      updateCount(area);
      area.setAttribute('data-dirty', 'true');
    }
  });

  function setCount(scope, name, value) {
    each('[data-count="' + name + '"]', scope, function (el) {
      el.textContent = text(value);
    });
  }

  // Shows the state /api/audit reports; true while there is still something to wait for.
  function applyProgress(data) {
    var busy = false;
    var scan = data.scan || {};
    each('[data-audit-progress]', document, function (section) {
      var bar = section.querySelector('[data-scan-bar]');
      if (bar && scan.bar_max > 0) {
        bar.max = scan.bar_max;
        bar.value = Math.min(scan.bar_value, scan.bar_max);
        bar.hidden = false;
      }
      var message = section.querySelector('[data-scan-message]');
      if (message && message.textContent !== text(scan.message)) message.textContent = text(scan.message);
      var summary = data.summary || {};
      ['missing', 'total', 'drafted', 'queued', 'published'].forEach(function (name) {
        setCount(section, name, summary[name]);
      });
      var wasScanning = section.hasAttribute('data-in-progress');
      if (scan.in_progress) {
        section.setAttribute('data-in-progress', '');
        busy = true;
      } else if (wasScanning) {
        section.removeAttribute('data-in-progress');
        announce(text(scan.message));
        var reload = section.querySelector('[data-scan-reload]');
        var typing = document.querySelector('textarea[data-dirty]');
        if (typing && reload) reload.hidden = false;
        else if (!typing) window.location.assign(section.getAttribute('data-self-url') || window.location.pathname);
      }
    });
    (data.items || []).forEach(function (item) {
      var row = document.querySelector('[data-media-item="' + Number(item.id) + '"]');
      if (!row) return;
      var label = row.querySelector('[data-state-label]');
      var line = row.querySelector('[data-status-line]');
      var changed = line && line.textContent !== text(item.status_line);
      if (label) {
        label.textContent = text(item.state_label);
        label.className = 'badge badge--' + text(item.state);
      }
      if (line) line.textContent = text(item.status_line);
      row.className = 'media-item media-item--' + text(item.state);
      var retry = row.querySelector('[data-retry-form]');
      if (retry) retry.hidden = !item.can_retry;
      if (changed && (item.state === 'published' || item.state === 'failed')) announce(text(item.status_line));
      if (item.state === 'queued' || item.state === 'waiting') busy = true;
    });
    return busy;
  }

  var pollTimer = null;

  function refreshAudit() {
    var section = document.querySelector('[data-audit-progress]');
    if (!section || typeof window.fetch !== 'function') return;
    window.clearTimeout(pollTimer);
    fetch(section.getAttribute('data-progress-url'), {
      credentials: 'same-origin',
      headers: { Accept: 'application/json' }
    }).then(function (response) {
      if (!response.ok) return null;
      return response.json();
    }).then(function (data) {
      if (!data) return;
      if (applyProgress(data)) pollTimer = window.setTimeout(refreshAudit, 1500);
    }).catch(function () {
      pollTimer = window.setTimeout(refreshAudit, 5000);
    });
  }

  function startAuditPolling() {
    window.clearTimeout(pollTimer);
    var section = document.querySelector('[data-audit-progress]');
    if (!section) return;
    var pending = section.hasAttribute('data-in-progress') ||
      document.querySelector('.media-item--queued, .media-item--waiting');
    if (pending) pollTimer = window.setTimeout(refreshAudit, 1000);
  }
  startAuditPolling();

  // ---- Navigation: mark the current section ---------------------------------------------

  // "/admin/audit" belongs to the section of "/admin/users": same first path segment.
  function section(path) {
    return path.split('/')[1] || '';
  }

  each('.site-nav a[href]', document, function (link) {
    if (link.hasAttribute('aria-current') || link.origin !== window.location.origin) return;
    var here = window.location.pathname;
    var path = link.pathname;
    if (here === path) link.setAttribute('aria-current', 'page');
    else if (path !== '/' && (here.indexOf(path + '/') === 0 || section(here) === section(path))) {
      link.setAttribute('aria-current', 'true');
    }
  });
})();
