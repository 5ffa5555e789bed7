// What the UI knows of each core entity: endpoints, columns, form fields, body.
//
// `fields(entity, ctx)` returns the form's fields filled from `entity` (null when
// creating); `body(form, ctx, editing)` reads them back into a request body.
// Control names are the API's field names, so errors land next to them.

import { ApiError } from "./api.js";
import { checkbox, field, h, input, select, splitList, textarea } from "./dom.js";

// The plugins the control plane knows; the API lists them if another is tried.
const PLUGIN_NAMES = [
  "acl",
  "basic-auth",
  "correlation-id",
  "cors",
  "ip-restriction",
  "key-auth",
  "prometheus",
  "rate-limiting",
  "request-size-limiting",
  "request-termination",
  "request-transformer",
  "response-transformer",
];

function value(form, name) {
  const text = form.elements.namedItem(name)?.value?.trim() ?? "";
  return text === "" ? null : text;
}

function checked(form, name) {
  return Boolean(form.elements.namedItem(name)?.checked);
}

function list(form, name) {
  return splitList(form.elements.namedItem(name)?.value);
}

function chips(items) {
  if (!items?.length) return "—";
  return h(
    "ul",
    { class: "chips" },
    items.map((item) => h("li", { class: "chip" }, item)),
  );
}

function code(text) {
  return text ? h("code", {}, text) : "—";
}

function yesNo(flag) {
  return flag === false ? "no" : "yes";
}

function tagsField(entity) {
  return field(
    "Tags",
    input("tags", (entity?.tags || []).join(", ")),
    "Comma-separated.",
  );
}

/** Return the name a person knows an entity by. */
export function entityLabel(entity) {
  return (
    entity?.name ||
    entity?.username ||
    entity?.custom_id ||
    entity?.group ||
    entity?.key ||
    entity?.id ||
    ""
  );
}

/** Return `singular` with its article: "a service", "an ACL group". */
export function withArticle(singular) {
  return `${/^[aeiou]/i.test(singular) ? "an" : "a"} ${singular}`;
}

/** Return the URL a service's protocol, host, port and path spell. */
export function serviceUrl(service) {
  if (!service?.host) return "";
  const port = service.port ? `:${service.port}` : "";
  return `${service.protocol || "http"}://${service.host}${port}${service.path || ""}`;
}

function nameOf(map, reference) {
  if (!reference?.id) return null;
  const found = map.get(reference.id);
  return found
    ? found.name || found.username || found.custom_id || found.id
    : reference.id;
}

function parseConfig(form) {
  const text = form.elements.namedItem("config").value.trim();
  if (!text) return {};
  try {
    const parsed = JSON.parse(text);
    if (parsed && typeof parsed === "object" && !Array.isArray(parsed)) return parsed;
  } catch (error) {
    throw configError(`not valid JSON: ${error.message}`);
  }
  throw configError("must be a JSON object");
}

function configError(reason) {
  return new ApiError(400, {
    title: "Bad Request",
    detail: "The plugin configuration is not a JSON object.",
    invalid_parameters: [{ field: "config", rule: "type", reason }],
  });
}

function scopeOf(plugin) {
  if (plugin?.consumer?.id) return "consumer";
  if (plugin?.route?.id) return "route";
  if (plugin?.service?.id) return "service";
  return "global";
}

function targetOptions(ctx, scope) {
  const source = { service: ctx.services, route: ctx.routes, consumer: ctx.consumers };
  return (source[scope] || []).map((item) => [
    item.id,
    item.name || item.username || item.custom_id || item.id,
  ]);
}

function pluginScopeFields(entity, ctx) {
  const scope = select(
    "scope",
    [
      ["global", "Global: every request"],
      ["service", "One service"],
      ["route", "One route"],
      ["consumer", "One consumer"],
    ],
    scopeOf(entity),
  );
  const target = select("target", targetOptions(ctx, scope.value), null);
  const targetField = field("Applies to", target);
  const sync = () => {
    const current = scope.value;
    target.replaceChildren(
      ...targetOptions(ctx, current).map(([id, text]) =>
        h("option", { value: id }, text),
      ),
    );
    const reference = entity?.[current];
    if (reference?.id) target.value = reference.id;
    targetField.hidden = current === "global";
    // Errors about the chosen scope's field land on the target picker.
    target.name = current === "global" ? "target" : current;
  };
  scope.addEventListener("change", sync);
  sync();
  return [field("Scope", scope), targetField];
}

export const KINDS = {
  services: {
    title: "Services",
    plural: "services",
    singular: "service",
    endpoints: ["listServices", "createService", "putService", "deleteService"],
    columns: [
      ["Name", (item) => item.name || "—"],
      ["URL", (item) => code(serviceUrl(item))],
      ["Enabled", (item) => yesNo(item.enabled)],
      ["Tags", (item) => chips(item.tags)],
    ],
    fields: (entity) => [
      field("Name", input("name", entity?.name, { autocomplete: "off" })),
      field(
        "URL",
        input("url", serviceUrl(entity), {
          required: true,
          placeholder: "http://127.0.0.1:8080/anything",
        }),
        "The upstream: protocol, host, port and path in one.",
      ),
      field("Enabled", checkbox("enabled", entity ? entity.enabled !== false : true)),
      tagsField(entity),
    ],
    body: (form) => ({
      name: value(form, "name"),
      url: value(form, "url"),
      enabled: checked(form, "enabled"),
      tags: list(form, "tags"),
    }),
    // The URL replaces these four; sending both would contradict itself.
    replaces: ["protocol", "host", "port", "path"],
  },

  routes: {
    title: "Routes",
    plural: "routes",
    singular: "route",
    endpoints: ["listRoutes", "createRoute", "putRoute", "deleteRoute"],
    columns: [
      ["Name", (item) => item.name || "—"],
      ["Paths", (item) => chips(item.paths)],
      ["Hosts", (item) => chips(item.hosts)],
      ["Methods", (item) => chips(item.methods)],
      ["Strip path", (item) => yesNo(item.strip_path)],
      ["Service", (item, ctx) => nameOf(ctx.servicesById, item.service) || "—"],
    ],
    fields: (entity, ctx) => [
      field("Name", input("name", entity?.name, { autocomplete: "off" })),
      field(
        "Paths",
        textarea("paths", (entity?.paths || []).join("\n"), { rows: 2 }),
        "One per line, e.g. /mock. A route needs paths, hosts or methods.",
      ),
      field(
        "Hosts",
        input("hosts", (entity?.hosts || []).join(", ")),
        "Comma-separated.",
      ),
      field(
        "Methods",
        input("methods", (entity?.methods || []).join(", ")),
        "Comma-separated, e.g. GET, POST.",
      ),
      field(
        "Strip path",
        checkbox("strip_path", entity ? entity.strip_path !== false : true),
      ),
      field(
        "Service",
        select(
          "service",
          [
            ["", "No service"],
            ...ctx.services.map((item) => [item.id, item.name || item.id]),
          ],
          entity?.service?.id || ctx.services[0]?.id || "",
        ),
      ),
      tagsField(entity),
    ],
    body: (form) => {
      const service = value(form, "service");
      return {
        name: value(form, "name"),
        paths: list(form, "paths"),
        hosts: list(form, "hosts"),
        methods: list(form, "methods").map((item) => item.toUpperCase()),
        strip_path: checked(form, "strip_path"),
        service: service ? { id: service } : null,
        tags: list(form, "tags"),
      };
    },
  },

  plugins: {
    title: "Plugins",
    plural: "plugins",
    singular: "plugin",
    endpoints: ["listPlugins", "createPlugin", "putPlugin", "deletePlugin"],
    columns: [
      [
        "Name",
        (item) =>
          item.instance_name ? `${item.name} (${item.instance_name})` : item.name,
      ],
      [
        "Scope",
        (item, ctx) => {
          const scope = scopeOf(item);
          if (scope === "global") return "global";
          const maps = {
            service: ctx.servicesById,
            route: ctx.routesById,
            consumer: ctx.consumersById,
          };
          return `${scope} ${nameOf(maps[scope], item[scope])}`;
        },
      ],
      ["Enabled", (item) => yesNo(item.enabled)],
    ],
    fields: (entity, ctx) => {
      const name = input("name", entity?.name, {
        required: true,
        list: "plugin-names",
        autocomplete: "off",
      });
      return [
        field("Plugin", name),
        h(
          "datalist",
          { id: "plugin-names" },
          PLUGIN_NAMES.map((item) => h("option", { value: item })),
        ),
        ...pluginScopeFields(entity, ctx),
        field("Enabled", checkbox("enabled", entity ? entity.enabled !== false : true)),
        field(
          "Configuration (JSON)",
          textarea("config", JSON.stringify(entity?.config || {}, null, 2), {
            rows: 10,
            class: "code",
            spellcheck: "false",
          }),
          "Fields you leave out get the plugin's defaults, shown here after saving.",
        ),
      ];
    },
    body: (form) => {
      const scope = value(form, "scope") || "global";
      const body = {
        name: value(form, "name"),
        enabled: checked(form, "enabled"),
        config: parseConfig(form),
        service: null,
        route: null,
        consumer: null,
      };
      const target = form.querySelector("[name=service],[name=route],[name=consumer]");
      if (scope === "global") return body;
      if (!target?.value) {
        // Saving it anyway would make a global plugin the user did not ask for.
        throw new ApiError(400, {
          title: "Bad Request",
          detail: `This group has no ${scope} to apply the plugin to.`,
          invalid_parameters: [
            { field: "scope", rule: "required", reason: `no ${scope} to choose` },
          ],
        });
      }
      body[scope] = { id: target.value };
      return body;
    },
    showAfterSave: true,
  },

  consumers: {
    title: "Consumers",
    plural: "consumers",
    singular: "consumer",
    endpoints: ["listConsumers", "createConsumer", "putConsumer", "deleteConsumer"],
    columns: [
      ["Username", (item, ctx) => ctx.consumerLink(item)],
      ["Custom ID", (item) => item.custom_id || "—"],
      ["Tags", (item) => chips(item.tags)],
    ],
    fields: (entity) => [
      field("Username", input("username", entity?.username, { autocomplete: "off" })),
      field(
        "Custom ID",
        input("custom_id", entity?.custom_id, { autocomplete: "off" }),
        "A consumer needs a username, a custom ID, or both.",
      ),
      tagsField(entity),
    ],
    body: (form) => ({
      username: value(form, "username"),
      custom_id: value(form, "custom_id"),
      tags: list(form, "tags"),
    }),
  },

  "basic-auth": {
    title: "Basic authentication",
    plural: "basic-auth credentials",
    singular: "basic-auth credential",
    endpoints: ["listBasicAuth", "createBasicAuth", "putBasicAuth", "deleteBasicAuth"],
    columns: [["Username", (item) => item.username]],
    fields: (entity) => [
      field("Username", input("username", entity?.username, { autocomplete: "off" })),
      field(
        "Password",
        input("password", "", { type: "password", autocomplete: "new-password" }),
        entity
          ? "Required: the stored password is a hash and cannot be shown."
          : "Stored as a hash; never shown again.",
      ),
    ],
    body: (form) => ({
      username: value(form, "username"),
      password: form.elements.namedItem("password").value,
    }),
  },

  "key-auth": {
    title: "Key authentication",
    plural: "key-auth credentials",
    singular: "key-auth credential",
    endpoints: ["listKeyAuth", "createKeyAuth", "putKeyAuth", "deleteKeyAuth"],
    columns: [["Key", (item) => code(item.key)]],
    fields: (entity) => [
      field(
        "Key",
        input("key", entity?.key, { autocomplete: "off" }),
        "Leave empty to have one generated.",
      ),
    ],
    body: (form) => {
      const key = value(form, "key");
      return key ? { key } : {};
    },
  },

  acls: {
    title: "ACL groups",
    plural: "ACL groups",
    singular: "ACL group",
    endpoints: ["listAcls", "createAcl", "putAcl", "deleteAcl"],
    columns: [["Group", (item) => item.group]],
    fields: (entity) => [
      field(
        "Group",
        input("group", entity?.group, { required: true, autocomplete: "off" }),
      ),
    ],
    body: (form) => ({ group: value(form, "group") }),
  },
};
