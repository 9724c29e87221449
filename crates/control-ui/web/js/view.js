// Base class of the views (web components): subscriptions are dropped when the view leaves
// the page, and `load()` runs after every (re)connect, because events are never replayed.

import { ctx } from './context.js';
import { h, unavailable } from './dom.js';

export class View extends HTMLElement {
  /** Methods this view cannot work without. */
  static requires = [];

  get gw() {
    return ctx.gw;
  }

  connectedCallback() {
    this.classList.add('view');
    this.cleanups = [];
    this.ready = false;
    this.listen(this.gw.onHello(() => this.refresh()));
    this.setup?.();
    if (this.gw.connected) this.refresh();
  }

  disconnectedCallback() {
    for (const f of this.cleanups) f();
    this.cleanups = [];
    this.teardown?.();
  }

  listen(unsubscribe) {
    this.cleanups.push(unsubscribe);
  }

  every(ms, fn) {
    const t = setInterval(fn, ms);
    this.cleanups.push(() => clearInterval(t));
  }

  refresh() {
    const missing = this.gw.missing(...this.constructor.requires);
    if (missing.length) {
      this.replaceChildren(this.header?.() || '', unavailable(this.constructor.label || 'This view', missing));
      this.ready = false;
      return;
    }
    this.ready = true;
    this.load?.();
  }
}

/** A page header: title, subtitle and actions. */
export function pageHeader(title, subtitle, ...actions) {
  return h('header', { class: 'page-header' },
    h('div', {}, h('h1', { text: title }), subtitle ? h('p', { class: 'muted', text: subtitle }) : null),
    h('div', { class: 'page-actions' }, actions));
}
