// A group's core entities: list, create, edit and delete; read-only on composites.

import { call, listAllEntities } from "./api.js";
import { memberGroups } from "./composite.js";
import { entityLabel, KINDS, withArticle } from "./entitykinds.js";
import {
  button,
  clearMessages,
  h,
  messageArea,
  replace,
  showError,
  showNotice,
  table,
} from "./dom.js";
import { groupLink, isComposite } from "./grouptypes.js";
import { navigate } from "./router.js";

// The lists each kind of entity needs beside its own, to name what it points at.
const NEEDS = {
  services: ["services"],
  routes: ["routes", "services"],
  plugins: ["plugins", "services", "routes", "consumers"],
  consumers: ["consumers"],
};

// Fields the API sets itself; a PUT carries everything else the entity had.
const READ_ONLY = ["id", "created_at", "updated_at"];

function byId(items) {
  return new Map(items.map((item) => [item.id, item]));
}

async function loadGroupEntities(groupId, kinds) {
  const lists = await Promise.all(
    kinds.map((kind) => listAllEntities(KINDS[kind].endpoints[0], { group: groupId })),
  );
  return Object.fromEntries(kinds.map((kind, index) => [kind, lists[index]]));
}

function context(groupId, loaded) {
  const ctx = {
    services: loaded.services || [],
    routes: loaded.routes || [],
    consumers: loaded.consumers || [],
    consumerLink: (consumer) =>
      h(
        "a",
        {
          href:
            `#/groups/${encodeURIComponent(consumer._group || groupId)}` +
            `/consumers/${encodeURIComponent(consumer.id)}`,
        },
        consumer.username || consumer.custom_id || consumer.id,
      ),
  };
  ctx.servicesById = byId(ctx.services);
  ctx.routesById = byId(ctx.routes);
  ctx.consumersById = byId(ctx.consumers);
  return ctx;
}

/** Turn form values into a request body: empty lists mean unset, as in Kong. */
function normalize(body, editing) {
  const result = {};
  for (const [key, item] of Object.entries(body)) {
    const cleared = Array.isArray(item) && item.length === 0 ? null : item;
    if (cleared === null && !editing) continue;
    result[key] = cleared;
  }
  return result;
}

function putBody(kind, entity, body) {
  const base = { ...entity };
  for (const key of [...READ_ONLY, ...(kind.replaces || [])]) delete base[key];
  for (const key of Object.keys(base)) {
    if (key.startsWith("_")) delete base[key];
  }
  return { ...base, ...body };
}

/**
 * Render an entity list with its create/edit form.
 * `params` carries the path parameters (`group`, and `consumer` for credentials);
 * `state` may carry a `notice` to show, and an entity to open for `editing`
 * with its own `formNotice`.
 */
function renderKind(container, kindName, params, entities, ctx, state = {}) {
  const kind = KINDS[kindName];
  const [, createName, putName, deleteName] = kind.endpoints;
  const section = h("section", { class: "entity-kind" });
  const messages = messageArea();
  const formSlot = h("div");
  const refresh = (next) => {
    // Re-read the list so what is shown is what the control plane stored.
    listAllEntities(kind.endpoints[0], params).then(
      (fresh) => renderKind(container, kindName, params, fresh, ctx, next),
      (error) => showError(messages, error),
    );
  };

  const openForm = (entity, formNotice) => {
    const formMessages = messageArea();
    const form = h(
      "form",
      {
        class: "card",
        onsubmit: async (event) => {
          event.preventDefault();
          clearMessages(formMessages, form);
          try {
            const body = normalize(
              kind.body(form, ctx, Boolean(entity)),
              Boolean(entity),
            );
            const saved = entity
              ? await call(
                  putName,
                  { ...params, id: entity.id },
                  {
                    body: putBody(kind, entity, body),
                  },
                )
              : await call(createName, params, { body });
            const label = entityLabel(saved);
            if (kind.showAfterSave) {
              refresh({
                editing: saved,
                formNotice:
                  `Saved ${kind.singular} ${label}. The configuration now shows ` +
                  "the defaults the control plane filled in.",
              });
            } else {
              refresh({ notice: `Saved ${kind.singular} ${label}.` });
            }
          } catch (error) {
            showError(formMessages, error, form);
          }
        },
      },
      h(
        "h3",
        {},
        entity ? `Edit ${kind.singular}` : `Add ${withArticle(kind.singular)}`,
      ),
      kind.fields(entity, ctx),
      formMessages,
      h(
        "div",
        { class: "actions" },
        h("button", { type: "submit" }, entity ? "Save" : "Create"),
        button("Close", () => replace(formSlot), { class: "secondary" }),
      ),
    );
    replace(formSlot, form);
    if (formNotice) showNotice(formMessages, formNotice);
    form.querySelector("input, select, textarea")?.focus();
  };

  const remove = async (entity) => {
    const label = entityLabel(entity);
    if (!window.confirm(`Delete ${kind.singular} ${label}?`)) return;
    try {
      await call(deleteName, { ...params, id: entity.id });
      refresh({ notice: `Deleted ${kind.singular} ${label}.` });
    } catch (error) {
      showError(messages, error);
    }
  };

  const listTable = () =>
    table(
      kind.title,
      [...kind.columns.map(([heading]) => heading), "Actions"],
      entities.map((entity) => [
        ...kind.columns.map(([, render]) => render(entity, ctx)),
        h(
          "div",
          { class: "row-actions" },
          button("Edit", () => openForm(entity), {
            class: "secondary",
            "aria-label": `Edit ${kind.singular} ${entityLabel(entity)}`,
          }),
          button("Delete", () => remove(entity), {
            class: "destructive",
            "aria-label": `Delete ${kind.singular} ${entityLabel(entity)}`,
          }),
        ),
      ]),
      `No ${kind.plural} yet.`,
    );
  const heading = h("h2", { tabindex: "-1" }, `${kind.title} (${entities.length})`);
  replace(
    section,
    heading,
    messages,
    listTable(),
    button(`Add ${withArticle(kind.singular)}`, () => openForm(null)),
    formSlot,
  );
  replace(container, section);
  if (state.notice) {
    showNotice(messages, state.notice);
    // The form that had focus is gone; land where the outcome is announced.
    heading.focus();
  }
  if (state.editing) openForm(state.editing, state.formNotice);
}

async function renderMerged(container, group, kindName) {
  const kind = KINDS[kindName];
  const members = await memberGroups(group);
  const loadedPerMember = await Promise.all(
    members.map((member) => loadGroupEntities(member.id, NEEDS[kindName])),
  );
  const merged = {};
  loadedPerMember.forEach((loaded, index) => {
    for (const [name, items] of Object.entries(loaded)) {
      const tagged = items.map((item) => ({ ...item, _group: members[index].id }));
      merged[name] = [...(merged[name] || []), ...tagged];
    }
  });
  const ctx = context(group.id, merged);
  const membersById = byId(members);
  const rows = (merged[kindName] || []).map((entity) => [
    groupLink(membersById.get(entity._group)),
    ...kind.columns.map(([, render]) => render(entity, ctx)),
  ]);
  replace(
    container,
    h("h2", {}, `${kind.title} (${rows.length})`),
    h(
      "p",
      { class: "notice" },
      "A composite runtime group has no configuration of its own: its data plane " +
        "nodes run the merge of its members' configurations. This view is read-only; " +
        "edit these entities in the member group that holds them.",
    ),
    members.length
      ? table(
          `${kind.title} of the members`,
          ["Member", ...kind.columns.map(([heading]) => heading)],
          rows,
          `The members have no ${kind.plural}.`,
        )
      : h("p", { class: "empty" }, "This composite group has no members yet."),
  );
}

/** Render one kind of entity of a group: editable, or merged when composite. */
export async function renderEntities(container, group, kindName) {
  if (isComposite(group)) {
    await renderMerged(container, group, kindName);
    return;
  }
  const loaded = await loadGroupEntities(group.id, NEEDS[kindName]);
  renderKind(
    container,
    kindName,
    { group: group.id },
    loaded[kindName],
    context(group.id, loaded),
  );
}

/** Render one consumer: its fields and its credentials of every kind. */
export async function renderConsumer(container, group, consumerId) {
  const consumers = await listAllEntities("listConsumers", { group: group.id });
  const consumer = consumers.find(
    (item) => item.id === consumerId || item.username === consumerId,
  );
  if (!consumer) {
    replace(container, h("p", {}, "This consumer no longer exists."));
    return;
  }
  const params = { group: group.id, consumer: consumer.id };
  const composite = isComposite(group);
  const kinds = ["basic-auth", "key-auth", "acls"];
  const lists = await Promise.all(
    kinds.map((kind) => listAllEntities(KINDS[kind].endpoints[0], params)),
  );
  const slots = kinds.map(() => h("div"));
  replace(
    container,
    h(
      "p",
      {},
      button(
        "← All consumers",
        () => navigate(`#/groups/${encodeURIComponent(group.id)}/consumers`),
        { class: "secondary" },
      ),
    ),
    h("h2", {}, `Consumer ${consumer.username || consumer.custom_id || consumer.id}`),
    h(
      "dl",
      { class: "card facts" },
      h("dt", {}, "ID"),
      h("dd", {}, h("code", {}, consumer.id)),
      h("dt", {}, "Custom ID"),
      h("dd", {}, consumer.custom_id || "—"),
    ),
    slots,
  );
  kinds.forEach((kind, index) => {
    if (composite) return;
    renderKind(slots[index], kind, params, lists[index], context(group.id, {}));
  });
}
