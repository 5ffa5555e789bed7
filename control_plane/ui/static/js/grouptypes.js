// What kind a runtime group is, in both of Konnect's vocabularies.

import { h } from "./dom.js";

const STANDARD_TYPES = ["CLUSTER_TYPE_HYBRID", "CLUSTER_TYPE_CONTROL_PLANE"];
const COMPOSITE_TYPES = ["CLUSTER_TYPE_COMPOSITE", "CLUSTER_TYPE_CONTROL_PLANE_GROUP"];

export function clusterType(group) {
  return group.config?.cluster_type || group.cluster_type || "CLUSTER_TYPE_HYBRID";
}

export function isComposite(group) {
  return COMPOSITE_TYPES.includes(clusterType(group));
}

export function isStandard(group) {
  return STANDARD_TYPES.includes(clusterType(group));
}

export function kindLabel(group) {
  if (isComposite(group)) return "Composite";
  if (isStandard(group)) return "Standard";
  if (clusterType(group) === "CLUSTER_TYPE_K8S_INGRESS_CONTROLLER") {
    return "Kubernetes Ingress Controller";
  }
  return clusterType(group);
}

export function groupLink(group) {
  return h("a", { href: `#/groups/${encodeURIComponent(group.id)}` }, group.name);
}
