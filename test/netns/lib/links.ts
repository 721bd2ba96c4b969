/** A row of `ip -j -d link show`, as the netns tests read it. */
export interface LinkRow {
  ifname: string;
  address: string;
  mtu: number;
  master?: string;
  flags: string[];
  operstate?: string;
  linkinfo?: { info_kind?: string };
}
