// Composite groups: their members, a preview of a membership change, status.

import { call, listAllPages } from "./api.js";
import {
  button,
  clearMessages,
  field,
  h,
  messageArea,
  replace,
  showError,
  table,
} from "./dom.js";
import { groupLink, isStandard } from "./grouptypes.js";
import { navigate } from "./router.js";

const STATES = {
  COMPOSITE_STATE_OK: ["ok", "No conflicts"],
  OK: ["ok", "No conflicts"],
  COMPOSITE_STATE_CONFLICT: ["conflict", "In conflict"],
  CONFLICT: ["conflict", "In conflict"],
  COMPOSITE_STATE_UNKNOWN: ["unknown", "Unknown"],
  UNKNOWN: ["unknown", "Unknown"],
};

/** Return the member groups of a composite group. */
export function memberGroups(group) {
  return listAllPages("listMembers", { group: group.id });
}

function conflictTable(conflicts, groupsById) {
  return table(
    "Conflicts",
    ["Member", "Resource", "Description"],
    conflicts.map((conflict) => {
      const member = groupsById.get(conflict.cluster_id);
      return [
        member ? groupLink(member) : h("code", {}, conflict.cluster_id || "—"),
        h(
          "span",
          {},
          conflict.resource?.type || "",
          " ",
          h("code", {}, conflict.resource?.id || ""),
        ),
        conflict.description || "",
      ];
    }),
    "No conflicts.",
  );
}

function stateBadge(state) {
  const [css, text] = STATES[state] || ["unknown", state || "Unknown"];
  return h("span", { class: `state state-${css}` }, text);
}

function membersBody(members) {
  return { members: members.map((id) => ({ id })) };
}

/** Render the members of `group`, and the form that adds or previews more. */
export async function renderMembers(container, group) {
  const [members, groups] = await Promise.all([
    memberGroups(group),
    listAllPages("listGroups", {}),
  ]);
  const memberIds = new Set(members.map((member) => member.id));
  const groupsById = new Map(groups.map((item) => [item.id, item]));
  const candidates = groups.filter(
    (item) => isStandard(item) && !memberIds.has(item.id),
  );

  const listMessages = messageArea();
  const rows = members.map((member) => [
    groupLink(member),
    h("code", {}, member.id),
    button(
      "Remove",
      async () => {
        const question =
          `Remove ${member.name} from ${group.name}? Its configuration leaves ` +
          "what this group's data plane nodes run.";
        if (!window.confirm(question)) return;
        try {
          await call(
            "removeMembers",
            { group: group.id },
            { body: membersBody([member.id]) },
          );
          navigate(location.hash);
        } catch (error) {
          showError(listMessages, error);
        }
      },
      {
        class: "destructive",
        "aria-label": `Remove ${member.name} from ${group.name}`,
      },
    ),
  ]);

  const messages = messageArea();
  const preview = h("div", { class: "preview", "aria-live": "polite" });
  const picker = h(
    "select",
    {
      name: "members",
      multiple: true,
      size: Math.min(8, Math.max(3, candidates.length)),
    },
    candidates.map((item) => h("option", { value: item.id }, item.name)),
  );
  const chosen = () => [...picker.selectedOptions].map((option) => option.value);

  const form = h(
    "form",
    {
      class: "card",
      onsubmit: async (event) => {
        event.preventDefault();
        clearMessages(messages, form);
        replace(preview);
        try {
          await call(
            "addMembers",
            { group: group.id },
            { body: membersBody(chosen()) },
          );
          navigate(location.hash);
        } catch (error) {
          showError(messages, error, form);
        }
      },
    },
    h("h2", {}, "Add members"),
    candidates.length
      ? field(
          "Standard runtime groups",
          picker,
          "Hold Ctrl (or ⌘) to choose several. A group with connected data plane " +
            "nodes cannot join, and a group joins at most 5 composite groups.",
        )
      : h("p", {}, "Every standard runtime group is already a member."),
    messages,
    preview,
    h(
      "div",
      { class: "actions" },
      button(
        "Preview conflicts",
        async () => {
          clearMessages(messages, form);
          try {
            const result = await call(
              "addMembers",
              { group: group.id },
              { body: membersBody(chosen()), query: { dry_run: "true" } },
            );
            const outcome = result?.item || result || {};
            const conflicts = outcome.conflicts || [];
            replace(
              preview,
              h("h3", {}, "Preview"),
              conflicts.length
                ? h("p", {}, "Adding these groups would cause these conflicts:")
                : h(
                    "p",
                    { class: "notice" },
                    "No conflicts: adding these groups is safe.",
                  ),
              conflicts.length ? conflictTable(conflicts, groupsById) : null,
            );
          } catch (error) {
            showError(messages, error, form);
          }
        },
        { class: "secondary", disabled: !candidates.length },
      ),
      h("button", { type: "submit", disabled: !candidates.length }, "Add members"),
    ),
  );

  replace(
    container,
    h("h2", {}, `Members (${members.length})`),
    listMessages,
    table(
      "Members",
      ["Name", "ID", ""],
      rows,
      "No members yet: add standard runtime groups below.",
    ),
    form,
  );
}

/** Render the composite's merge state and the conflicts that block it. */
export async function renderStatus(container, group) {
  const [status, groups] = await Promise.all([
    call("compositeStatus", { group: group.id }),
    listAllPages("listGroups", {}),
  ]);
  const item = status?.item || status || {};
  const conflicts = item.conflicts || [];
  const groupsById = new Map(groups.map((entry) => [entry.id, entry]));
  const messages = messageArea();
  replace(
    container,
    h("h2", {}, "Status ", stateBadge(item.state)),
    conflicts.length
      ? h(
          "p",
          {},
          "Conflicts have been found between the members. Until they are resolved, " +
            "this group's data plane nodes keep the last configuration without " +
            "conflicts.",
        )
      : h("p", {}, "The members' configurations merge without conflicts."),
    conflicts.length ? conflictTable(conflicts, groupsById) : null,
    messages,
    button("Refresh", () => navigate(location.hash), { class: "secondary" }),
  );
  if (item.updated_at) {
    replace(messages, h("p", { class: "hint" }, `Last change: ${item.updated_at}.`));
  }
}
