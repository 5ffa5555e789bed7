// Data plane nodes of a group, refreshed while shown, and adding a new one.

import { call } from "./api.js";
import {
  button,
  download,
  field,
  formatAgo,
  formatEpoch,
  h,
  input,
  messageArea,
  replace,
  showError,
  table,
} from "./dom.js";
import { currentView, onLeave } from "./router.js";

const REFRESH_MS = 5000;

function connectedBadge(node) {
  return node.connected
    ? h("span", { class: "state state-ok" }, "connected")
    : h("span", { class: "state state-unknown" }, "disconnected");
}

function formatLag(milliseconds) {
  if (typeof milliseconds !== "number") return "—";
  return milliseconds < 10
    ? `${milliseconds.toFixed(1)} ms`
    : `${Math.round(milliseconds)} ms`;
}

function shortHash(hash) {
  return hash ? h("code", { title: hash }, hash.slice(0, 12)) : "—";
}

/** Return the command line that starts a node of `group` with the new files. */
export function dataPlaneCommand(group) {
  const config = group.config || {};
  return [
    "python -m data_plane",
    `--cluster-control-plane ${config.control_plane_endpoint}`,
    `--cluster-telemetry-endpoint ${config.telemetry_endpoint}`,
    "--cluster-cert cluster.crt",
    "--cluster-cert-key cluster.key",
  ].join(" \\\n  ");
}

function copyable(label, text, filename) {
  const area = h("textarea", {
    readonly: true,
    rows: Math.min(12, text.split("\n").length + 1),
    class: "code",
    spellcheck: "false",
  });
  area.value = text;
  return h(
    "div",
    { class: "copyable" },
    field(label, area),
    h(
      "div",
      { class: "actions" },
      filename
        ? button(`Download ${filename}`, () => download(filename, text), {
            class: "secondary",
          })
        : null,
      button(
        "Copy",
        async (event) => {
          const target = event.currentTarget;
          try {
            await navigator.clipboard.writeText(text);
            target.textContent = "Copied";
          } catch {
            // Some browsers allow the clipboard only on https; select instead.
            area.select();
            target.textContent = "Selected: press Ctrl+C";
          }
          setTimeout(() => {
            target.textContent = "Copy";
          }, 2000);
        },
        { class: "secondary" },
      ),
    ),
  );
}

function addNodePanel(group, slot, onGenerated) {
  const messages = messageArea();
  const title = input("title", `${group.name} node`, { autocomplete: "off" });
  const form = h(
    "form",
    {
      class: "card",
      onsubmit: async (event) => {
        event.preventDefault();
        try {
          const generated = await call(
            "generateCertificate",
            { group: group.id },
            { body: { title: title.value.trim() || undefined } },
          );
          showGenerated(group, slot, generated);
          onGenerated();
        } catch (error) {
          showError(messages, error, form);
        }
      },
    },
    h("h3", {}, "Add a data plane node"),
    h(
      "p",
      {},
      "Portico generates a client certificate and pins it to this runtime group; " +
        "a node that presents it may connect.",
    ),
    field("Certificate title", title),
    messages,
    h(
      "div",
      { class: "actions" },
      h("button", { type: "submit" }, "Generate certificate"),
      button("Close", () => replace(slot), { class: "secondary" }),
    ),
  );
  replace(slot, form);
  title.focus();
}

function showGenerated(group, slot, generated) {
  const cert = generated?.item?.cert || "";
  const key = generated?.private_key || "";
  const heading = h("h3", { tabindex: "-1" }, "Your new data plane node");
  replace(
    slot,
    h(
      "section",
      { class: "card" },
      heading,
      h(
        "p",
        { class: "warning", role: "alert" },
        "The private key is shown only this once: download it now.",
      ),
      copyable("Certificate (cluster.crt)", cert, "cluster.crt"),
      copyable("Private key (cluster.key)", key, "cluster.key"),
      h("h4", {}, "Start the node"),
      h("p", {}, "In the directory holding both files:"),
      copyable("Command", dataPlaneCommand(group)),
      h(
        "p",
        { class: "hint" },
        "When the control plane uses its own self-signed cluster certificate, add " +
          "--cluster-ca-cert with a copy of it. On the machine running Portico, " +
          "this one command does all of the above:",
      ),
      copyable("Shortcut", `make dp GROUP=${group.name}`),
      button("Done", () => replace(slot), { class: "secondary" }),
    ),
  );
  heading.focus();
}

async function nodesTable(group, messages, onChange) {
  const body = await call(
    "listNodes",
    { group: group.id },
    { query: { "page[size]": 100 } },
  );
  const nodes = body?.data || body?.items || [];
  return table(
    "Data plane nodes",
    [
      "Hostname",
      "Version",
      "Config hash",
      "Sync",
      "Lag",
      "Last ping",
      "Connection",
      "",
    ],
    nodes.map((node) => [
      node.hostname || node.id,
      node.version || "—",
      shortHash(node.config_hash),
      node.sync_state || "—",
      formatLag(node.lag_ms),
      h("span", { title: formatEpoch(node.last_ping) }, formatAgo(node.last_ping)),
      connectedBadge(node),
      node.connected
        ? ""
        : button(
            "Forget",
            async () => {
              try {
                await call("deleteNode", { group: group.id, node: node.id });
                onChange();
              } catch (error) {
                showError(messages, error);
              }
            },
            {
              class: "secondary",
              "aria-label": `Forget node ${node.hostname || node.id}`,
            },
          ),
    ]),
    "No data plane node has connected to this group yet.",
  );
}

async function certificatesTable(group, messages, onChange) {
  const body = await call("listCertificates", { group: group.id });
  const items = body?.items || body?.data || [];
  return table(
    "Pinned client certificates",
    ["Title", "ID", "Created", ""],
    items.map((item) => [
      item.title || "—",
      h("code", {}, item.id),
      typeof item.created_at === "number"
        ? formatEpoch(item.created_at)
        : item.created_at,
      button(
        "Unpin",
        async () => {
          if (
            !window.confirm("Unpin this certificate? Nodes using it will be refused.")
          ) {
            return;
          }
          try {
            await call("deleteCertificate", { group: group.id, certificate: item.id });
            onChange();
          } catch (error) {
            showError(messages, error);
          }
        },
        {
          class: "destructive",
          "aria-label": `Unpin certificate ${item.title || item.id}`,
        },
      ),
    ]),
    "No client certificate is pinned to this group.",
  );
}

/** Render a group's nodes (refreshed every few seconds) and pinned certificates. */
export async function renderNodes(container, group) {
  const view = currentView();
  const messages = messageArea();
  const nodesSlot = h("div");
  const certificatesSlot = h("div");
  const addSlot = h("div");
  const updated = h("p", { class: "hint" });

  const refreshNodes = async () => {
    // Keep the user's place: a refresh would drop focus from a row's button.
    if (nodesSlot.contains(document.activeElement)) return;
    try {
      replace(nodesSlot, await nodesTable(group, messages, refreshNodes));
      replace(
        updated,
        `Updated ${new Date().toLocaleTimeString()}; refreshed every 5 s.`,
      );
    } catch (error) {
      showError(messages, error);
    }
  };
  const refreshCertificates = async () => {
    replace(
      certificatesSlot,
      await certificatesTable(group, messages, refreshCertificates),
    );
  };

  replace(
    container,
    h("h2", {}, "Data plane nodes"),
    button("Add a data plane node", () =>
      addNodePanel(group, addSlot, refreshCertificates),
    ),
    addSlot,
    messages,
    nodesSlot,
    updated,
    h("h2", {}, "Pinned client certificates"),
    certificatesSlot,
  );
  await Promise.all([refreshNodes(), refreshCertificates()]);
  const timer = setInterval(refreshNodes, REFRESH_MS);
  onLeave(() => clearInterval(timer), view);
}
