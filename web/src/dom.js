// dom.js — the only way pages are built: elements, attributes and text
// nodes. No string is ever parsed as HTML (the page's Content-Security-Policy
// requires Trusted Types and allows no policy, so the browser would refuse
// it anyway): a name, hostname or message from the server is always text.

// h('p', {class: 'x', onclick: fn}, 'text', child, …) -> an element.
// Props: 'class', 'dataset', 'on<event>' (a listener), a boolean or other
// non-string value for a DOM property (disabled, checked), or an attribute.
export function h(tag, props, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(props || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith('on')) {
      if (typeof v !== 'function') throw new TypeError(`${k} must be a function`);
      el.addEventListener(k.slice(2), v);
    } else if (k === 'class') {
      el.className = v;
    } else if (k === 'dataset') {
      Object.assign(el.dataset, v);
    } else if (typeof v !== 'string' && k in el) {
      el[k] = v;
    } else {
      el.setAttribute(k, v === true ? '' : String(v));
    }
  }
  append(el, children);
  return el;
}

// Appends CHILDREN (nodes, strings, numbers, nested arrays; null skipped).
export function append(el, children) {
  for (const c of [children].flat(Infinity)) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

// Replaces everything inside EL with CHILDREN.
export function replace(el, ...children) {
  el.replaceChildren();
  return append(el, children);
}
