// Small DOM helpers: build elements, labelled form fields, inline API errors.
//
// Text from the API is only ever set as text (never parsed as HTML), so a
// runtime group or route named like markup stays a name.

let nextId = 0;

/** Return a new element with attributes, properties and children. */
export function h(tag, attrs = {}, ...children) {
  const element = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith("on") && typeof value === "function") {
      element.addEventListener(key.slice(2), value);
    } else if (key === "class") {
      element.className = value;
    } else if (key === "dataset") {
      Object.assign(element.dataset, value);
    } else if (key in element && typeof value !== "string") {
      element[key] = value;
    } else {
      element.setAttribute(key, value === true ? "" : value);
    }
  }
  append(element, children);
  return element;
}

function append(element, children) {
  for (const child of children.flat(Infinity)) {
    if (child === undefined || child === null || child === false) continue;
    element.append(child instanceof Node ? child : document.createTextNode(child));
  }
}

/** Replace the children of `element`. */
export function replace(element, ...children) {
  element.replaceChildren();
  append(element, children);
  return element;
}

export function uid(prefix) {
  nextId += 1;
  return `${prefix}-${nextId}`;
}

/**
 * Return a labelled field: `control` is an input, select or textarea whose
 * `name` matches the API field, so errors naming that field can find it.
 */
export function field(label, control, hint) {
  control.id ||= uid("field");
  const hintId = hint ? uid("hint") : null;
  if (hintId) control.setAttribute("aria-describedby", hintId);
  const isCheck = control.type === "checkbox" || control.type === "radio";
  const labelElement = h("label", { for: control.id }, label);
  return h(
    "div",
    { class: isCheck ? "field field-check" : "field" },
    isCheck ? [control, labelElement] : [labelElement, control],
    hint ? h("p", { class: "hint", id: hintId }, hint) : null,
  );
}

export function input(name, value = "", attrs = {}) {
  return h("input", { name, value: value ?? "", type: "text", ...attrs });
}

export function checkbox(name, checked) {
  return h("input", { name, type: "checkbox", checked: Boolean(checked) });
}

export function textarea(name, value = "", attrs = {}) {
  const element = h("textarea", { name, rows: 4, ...attrs });
  element.value = value ?? "";
  return element;
}

export function select(name, options, value) {
  const element = h(
    "select",
    { name },
    options.map(([optionValue, text]) => h("option", { value: optionValue }, text)),
  );
  element.value = value ?? options[0]?.[0] ?? "";
  return element;
}

export function button(text, onclick, attrs = {}) {
  return h("button", { type: "button", onclick, ...attrs }, text);
}

/** Split a comma- or newline-separated list, dropping blanks. */
export function splitList(text) {
  return String(text || "")
    .split(/[\n,]/)
    .map((item) => item.trim())
    .filter(Boolean);
}

/** Return a region that announces status and errors to screen readers too. */
export function messageArea() {
  return h("div", { class: "messages", "aria-live": "polite" });
}

export function showNotice(area, text) {
  replace(area, h("p", { class: "notice", role: "status" }, text));
}

export function clearMessages(area, form) {
  replace(area);
  if (!form) return;
  for (const element of form.querySelectorAll("[aria-invalid]")) {
    element.removeAttribute("aria-invalid");
  }
  for (const element of form.querySelectorAll(".field-error")) element.remove();
}

function controlFor(form, fieldName) {
  if (!form) return null;
  // `config.realm` or `paths[0]` belong to the `config` or `paths` control.
  const candidates = [fieldName, fieldName.split(/[.[]/)[0]];
  for (const name of candidates) {
    const found = form.querySelector(`[name="${CSS.escape(name)}"]`);
    if (found) return found;
  }
  return null;
}

/**
 * Show an API error inline: its title and detail in `area`, and each of its
 * `invalid_parameters` next to the form control of the same name.
 */
export function showError(area, error, form) {
  clearMessages(area, form);
  const problem = error.problem || {};
  const unplaced = [];
  let first = null;
  for (const parameter of error.invalidParameters || []) {
    const reason = parameter.reason || parameter.rule || "invalid";
    const control = controlFor(form, String(parameter.field || ""));
    if (!control) {
      unplaced.push(`${parameter.field}: ${reason}`);
      continue;
    }
    // A nested field (`config.hour`) is shown on its parent control, so it
    // keeps its full name there.
    const shown =
      control.name === parameter.field ? reason : `${parameter.field}: ${reason}`;
    const errorId = uid("error");
    control.setAttribute("aria-invalid", "true");
    const described = control.getAttribute("aria-describedby");
    control.setAttribute(
      "aria-describedby",
      described ? `${described} ${errorId}` : errorId,
    );
    control
      .closest(".field")
      ?.append(h("p", { class: "field-error", id: errorId }, shown));
    first ||= control;
  }
  const title = error.status
    ? `${problem.title || "Error"} (${error.status})`
    : problem.title || "Error";
  replace(
    area,
    h(
      "div",
      { class: "error", role: "alert" },
      h("strong", {}, title),
      h("p", {}, error.message),
      unplaced.length
        ? h(
            "ul",
            {},
            unplaced.map((text) => h("li", {}, text)),
          )
        : null,
    ),
  );
  first?.focus();
}

/** Return a table with a header row; `rows` are arrays of cells. */
export function table(caption, headings, rows, emptyText = "Nothing here yet.") {
  if (!rows.length) return h("p", { class: "empty" }, emptyText);
  return h(
    "div",
    { class: "table-wrap" },
    h(
      "table",
      {},
      h("caption", { class: "visually-hidden" }, caption),
      h(
        "thead",
        {},
        h(
          "tr",
          {},
          headings.map((text) => h("th", { scope: "col" }, text)),
        ),
      ),
      h(
        "tbody",
        {},
        rows.map((cells) =>
          h(
            "tr",
            {},
            // On a phone each row becomes a card whose cells name their column.
            cells.map((cell, index) =>
              h("td", { "data-label": headings[index] }, cell),
            ),
          ),
        ),
      ),
    ),
  );
}

export function formatEpoch(seconds) {
  if (!seconds) return "—";
  return new Date(seconds * 1000).toLocaleString();
}

export function formatAgo(seconds) {
  if (!seconds) return "never";
  const delta = Math.max(0, Math.round(Date.now() / 1000 - seconds));
  if (delta < 60) return `${delta} s ago`;
  if (delta < 3600) return `${Math.floor(delta / 60)} min ago`;
  return formatEpoch(seconds);
}

/** Offer `text` as a file download. */
export function download(filename, text) {
  const url = URL.createObjectURL(new Blob([text], { type: "application/x-pem-file" }));
  const link = h("a", { href: url, download: filename });
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 1000);
}
