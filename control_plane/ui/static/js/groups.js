// Runtime groups: the list, the create form, and each group's page with tabs.

import { ApiError, call, listAllPages } from "./api.js";
import { renderMembers, renderStatus } from "./composite.js";
import {
  button,
  clearMessages,
  field,
  h,
  input,
  messageArea,
  replace,
  select,
  showError,
  showNotice,
  table,
  textarea,
} from "./dom.js";
import { renderConsumer, renderEntities } from "./entities.js";
import { renderNodes } from "./nodes.js";
import { clusterType, groupLink, isComposite, kindLabel } from "./grouptypes.js";
import { navigate } from "./router.js";

function labelChips(labels) {
  const entries = Object.entries(labels || {});
  if (!entries.length) return "—";
  return h(
    "ul",
    { class: "chips" },
    entries.map(([key, value]) => h("li", { class: "chip" }, `${key}: ${value}`)),
  );
}

function formatLabels(labels) {
  return Object.entries(labels || {})
    .map(([key, value]) => `${key}=${value}`)
    .join("\n");
}

/** Parse `key=value` lines; raise an ApiError-shaped error naming `labels`. */
function parseLabels(text) {
  const labels = {};
  for (const line of text
    .split("\n")
    .map((item) => item.trim())
    .filter(Boolean)) {
    const at = line.indexOf("=");
    if (at < 1) {
      throw new ApiError(400, {
        title: "Bad Request",
        detail: "Labels are written one per line as key=value.",
        invalid_parameters: [
          { field: "labels", rule: "format", reason: `"${line}" is not key=value` },
        ],
      });
    }
    labels[line.slice(0, at).trim()] = line.slice(at + 1).trim();
  }
  return labels;
}

function endpoints(group) {
  const config = group.config || {};
  return h(
    "dl",
    { class: "endpoints" },
    h("dt", {}, "Control plane"),
    h("dd", {}, h("code", {}, config.control_plane_endpoint || "—")),
    h("dt", {}, "Telemetry"),
    h("dd", {}, h("code", {}, config.telemetry_endpoint || "—")),
  );
}

function createForm() {
  const messages = messageArea();
  const name = input("name", "", { required: true, autocomplete: "off" });
  const description = textarea("description", "", { rows: 2 });
  const type = select(
    "cluster_type",
    [
      ["CLUSTER_TYPE_HYBRID", "Standard: holds its own configuration"],
      ["CLUSTER_TYPE_COMPOSITE", "Composite: serves the merge of its members"],
    ],
    "CLUSTER_TYPE_HYBRID",
  );
  const labels = textarea("labels", "", { rows: 2, placeholder: "env=dev" });
  const form = h(
    "form",
    {
      onsubmit: async (event) => {
        event.preventDefault();
        clearMessages(messages, form);
        try {
          const body = {
            name: name.value.trim(),
            cluster_type: type.value,
            labels: parseLabels(labels.value),
          };
          if (description.value.trim()) body.description = description.value.trim();
          const created = await call("createGroup", {}, { body });
          navigate(`#/groups/${encodeURIComponent(created.id)}`);
        } catch (error) {
          showError(messages, error, form);
        }
      },
    },
    h("div", { class: "grid" }, [
      field("Name", name),
      field("Type", type, "Cannot be changed later."),
    ]),
    field("Description", description),
    field("Labels", labels, "One key=value per line."),
    messages,
    h("button", { type: "submit" }, "Create runtime group"),
  );
  return h(
    "details",
    { class: "card" },
    h("summary", {}, "Create a runtime group"),
    form,
  );
}

/** Render every runtime group with its type, labels and endpoints. */
export async function renderGroupList(main) {
  const groups = await listAllPages("listGroups", {});
  const rows = groups.map((group) => [
    groupLink(group),
    h(
      "span",
      { class: `badge ${isComposite(group) ? "composite" : ""}` },
      kindLabel(group),
    ),
    labelChips(group.labels),
    endpoints(group),
    group.description || "",
  ]);
  replace(
    main,
    h("h1", {}, "Runtime groups"),
    h(
      "p",
      { class: "lede" },
      "A standard group holds services, routes, plugins and consumers; a composite " +
        "group serves the merged configuration of its member groups to its data " +
        "plane nodes.",
    ),
    createForm(),
    table(
      "Runtime groups",
      ["Name", "Type", "Labels", "Endpoints", "Description"],
      rows,
      "No runtime groups yet: create the first one above.",
    ),
  );
}

function overview(container, group) {
  const messages = messageArea();
  const description = textarea("description", group.description || "", { rows: 2 });
  const labels = textarea("labels", formatLabels(group.labels), { rows: 3 });
  const form = h(
    "form",
    {
      class: "card",
      onsubmit: async (event) => {
        event.preventDefault();
        clearMessages(messages, form);
        try {
          await call(
            "updateGroup",
            { group: group.id },
            {
              body: {
                description: description.value.trim(),
                labels: parseLabels(labels.value),
              },
            },
          );
          showNotice(messages, "Saved.");
        } catch (error) {
          showError(messages, error, form);
        }
      },
    },
    h("h2", {}, "Edit"),
    field("Description", description),
    field("Labels", labels, "One key=value per line."),
    messages,
    h("button", { type: "submit" }, "Save"),
  );

  const deleteMessages = messageArea();
  const danger = h(
    "section",
    { class: "card danger" },
    h("h2", {}, "Delete this runtime group"),
    h(
      "p",
      {},
      "A group that is a member of a composite group cannot be deleted until it " +
        "is removed from it.",
    ),
    deleteMessages,
    button(
      "Delete runtime group",
      async () => {
        if (!window.confirm(`Delete runtime group ${group.name}?`)) return;
        try {
          await call("deleteGroup", { group: group.id });
          navigate("#/groups");
        } catch (error) {
          showError(deleteMessages, error);
        }
      },
      { class: "destructive" },
    ),
  );

  replace(
    container,
    h(
      "dl",
      { class: "card facts" },
      h("dt", {}, "ID"),
      h("dd", {}, h("code", {}, group.id)),
      h("dt", {}, "Type"),
      h("dd", {}, `${kindLabel(group)} (${clusterType(group)})`),
      h("dt", {}, "Endpoints"),
      h("dd", {}, endpoints(group)),
      h("dt", {}, "Labels"),
      h("dd", {}, labelChips(group.labels)),
      h("dt", {}, "Created"),
      h("dd", {}, group.created_at || "—"),
      h("dt", {}, "Updated"),
      h("dd", {}, group.updated_at || "—"),
    ),
    form,
    danger,
  );
}

function tabsFor(group) {
  const entityTabs = [
    ["services", "Services"],
    ["routes", "Routes"],
    ["plugins", "Plugins"],
    ["consumers", "Consumers"],
  ];
  if (isComposite(group)) {
    return [
      ["overview", "Overview"],
      ["members", "Members"],
      ["status", "Status"],
      ...entityTabs,
      ["nodes", "Data plane nodes"],
    ];
  }
  return [["overview", "Overview"], ...entityTabs, ["nodes", "Data plane nodes"]];
}

/** Render one group's page: its header, tabs, and the chosen tab. */
export async function renderGroupPage(main, groupId, tab, item) {
  const group = await call("getGroup", { group: groupId });
  const base = `#/groups/${encodeURIComponent(group.id)}`;
  const current = tab === "consumers" && item ? "consumers" : tab;
  const body = h("div", { class: "tab-body" });
  replace(
    main,
    h(
      "nav",
      { class: "breadcrumbs", "aria-label": "Breadcrumbs" },
      h("a", { href: "#/groups" }, "Runtime groups"),
      " / ",
    ),
    h(
      "h1",
      {},
      group.name,
      " ",
      h(
        "span",
        { class: `badge ${isComposite(group) ? "composite" : ""}` },
        kindLabel(group),
      ),
    ),
    group.description ? h("p", { class: "lede" }, group.description) : null,
    h(
      "nav",
      { class: "tabs", "aria-label": "Runtime group sections" },
      tabsFor(group).map(([key, text]) =>
        h(
          "a",
          { href: `${base}/${key}`, "aria-current": key === current ? "page" : null },
          text,
        ),
      ),
    ),
    body,
  );

  if (tab === "overview") overview(body, group);
  else if (tab === "members") await renderMembers(body, group);
  else if (tab === "status") await renderStatus(body, group);
  else if (tab === "nodes") await renderNodes(body, group);
  else if (tab === "consumers" && item) await renderConsumer(body, group, item);
  else if (["services", "routes", "plugins", "consumers"].includes(tab)) {
    await renderEntities(body, group, tab);
  } else {
    replace(body, h("p", {}, `There is no section called ${tab}.`));
  }
}
