// Small DOM helpers: elements are built with properties and text nodes, never from HTML strings, so no
// value the API returns can become markup (and the content security policy needs no inline anything).

/**
 * Create an element: h("button", {type: "button", onclick: f, class: "primary"}, "Text", child).
 * Attribute names: "class" sets className, "on<event>" adds a listener, "dataset" an object of data-*,
 * "aria-*" / "data-*" / "for" / "role" are attributes; anything else is set as a property.
 */
export function h(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (name === "class") node.className = value;
    else if (name === "dataset") Object.assign(node.dataset, value);
    else if (name.startsWith("on") && typeof value === "function") node.addEventListener(name.slice(2), value);
    else if (name.startsWith("aria-") || name.startsWith("data-") || name === "for" || name === "role") {
      node.setAttribute(name, value === true ? "true" : String(value));
    } else node[name] = value;
  }
  append(node, children);
  return node;
}

/** Append children (strings become text nodes; null, false and undefined are skipped; arrays flattened). */
export function append(node, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

/** Remove every child of a node. */
export function clear(node) {
  while (node.firstChild) node.removeChild(node.firstChild);
  return node;
}

/** Replace a node's children. */
export function replace(node, ...children) {
  clear(node);
  return append(node, children);
}

/** Call fn after `wait` ms without a new call (the live count's debounce). */
export function debounce(fn, wait) {
  let timer = null;
  const debounced = (...args) => {
    clearTimeout(timer);
    timer = setTimeout(() => fn(...args), wait);
  };
  debounced.flush = (...args) => {
    clearTimeout(timer);
    fn(...args);
  };
  return debounced;
}

let uid = 0;
/** A unique id for label/control pairs. */
export function uniqueId(prefix = "m") {
  uid += 1;
  return `${prefix}-${uid}`;
}
