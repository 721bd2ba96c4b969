/** Where the rule file is (kept apart from the parser so the hook can find it cheaply). */
export const DEFAULT_RULES_PATH = '/etc/xen/xennet.yaml';

/** The rules path: explicit, else $XENNET_RULES, else /etc/xen/xennet.yaml. */
export function rulesPath(explicit?: string, env: NodeJS.ProcessEnv = process.env): string {
  return explicit ?? (env['XENNET_RULES'] || DEFAULT_RULES_PATH);
}
