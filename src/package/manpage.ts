/**
 * The man pages, written from what the program itself knows: xennet(8) from the CLI's command
 * modules (their options, positionals and examples, read by running each builder against a
 * recorder) and its reference data, xennet.yaml(5) from the rule file's JSON Schema. Nothing in
 * them is kept by hand.
 */
import type { CommandModule } from 'yargs';
import { COMPLETION, ROOT_EXAMPLES, ROOT_USAGE } from '../cli/commands/index.js';
import { ENVIRONMENT, EXIT_CODES, FILES } from '../cli/reference.js';

/** One option or positional as a builder declared it. */
export interface OptionDoc {
  name: string;
  positional: boolean;
  type?: string;
  describe?: string;
  default?: unknown;
  choices?: readonly unknown[];
  array?: boolean;
}

export interface CommandDoc {
  usage: string;
  describe: string;
  options: OptionDoc[];
  examples: [string, string][];
}

/** Runs a command's builder against a recorder: every `.option`, `.positional`, `.example` call. */
export function describeCommand(c: CommandModule<object, unknown>): CommandDoc {
  const doc: CommandDoc = { usage: String(c.command ?? ''), describe: typeof c.describe === 'string' ? c.describe : '', options: [], examples: [] };
  const record = (positional: boolean) => (name: unknown, spec: unknown) => {
    const s = (spec ?? {}) as Record<string, unknown>;
    doc.options.push({
      name: String(name),
      positional,
      ...(typeof s['type'] === 'string' ? { type: s['type'] } : {}),
      ...(typeof s['describe'] === 'string' ? { describe: s['describe'] } : {}),
      ...('default' in s ? { default: s['default'] } : {}),
      ...(Array.isArray(s['choices']) ? { choices: s['choices'] as unknown[] } : {}),
      ...(s['array'] === true ? { array: true } : {}),
    });
  };
  const handlers: Record<string, (...a: unknown[]) => void> = {
    option: record(false),
    options: (o) => {
      for (const [k, v] of Object.entries((o ?? {}) as Record<string, unknown>)) record(false)(k, v);
    },
    positional: record(true),
    example: (cmd, what) => {
      doc.examples.push([String(cmd), String(what ?? '')]);
    },
  };
  const recorder: object = new Proxy(
    {},
    {
      get: (_t, prop) => (...args: unknown[]) => {
        if (typeof prop === 'string') handlers[prop]?.(...args);
        return recorder;
      },
    },
  );
  if (typeof c.builder === 'function') (c.builder as (y: unknown) => unknown)(recorder);
  else if (c.builder && typeof c.builder === 'object') handlers['options']!(c.builder);
  return doc;
}

/** Text for roff: backslashes and hyphens escaped, no line starting with a control character. */
export function roffText(s: string): string {
  return s
    .replace(/\\/g, '\\e')
    .replace(/-/g, '\\-')
    .split('\n')
    .map((l) => (/^[.']/.test(l) ? `\\&${l}` : l))
    .join('\n');
}

const bold = (s: string): string => `\\fB${roffText(s)}\\fR`;
const italic = (s: string): string => `\\fI${roffText(s)}\\fR`;
const withProgram = (s: string): string => s.replace(/\$0/g, 'xennet');

function optionLine(o: OptionDoc): string {
  if (o.positional) return italic(o.name);
  const flag = o.name.length === 1 ? `-${o.name}` : `--${o.name}`;
  if (o.type === 'boolean') return bold(flag);
  return `${bold(flag)} ${italic(o.choices ? o.choices.join('|') : (o.type ?? 'value').toUpperCase())}`;
}

function optionText(o: OptionDoc): string {
  const parts = [o.describe ?? ''];
  if (o.choices && !o.positional) parts.push(`One of: ${o.choices.join(', ')}.`);
  if (o.array) parts.push('May be given more than once.');
  if (o.default !== undefined && o.type !== 'boolean') parts.push(`Default: ${JSON.stringify(o.default)}.`);
  if (o.type === 'boolean' && o.default === true) parts.push(`On by default; --no-${o.name} turns it off.`);
  return roffText(parts.filter((p) => p !== '').join(' '));
}

const header = (name: string, section: number, date: string, version: string, title: string): string[] => [
  `.\\" Generated from xennet ${version}; do not edit (see src/package/manpage.ts).`,
  `.TH ${name.toUpperCase()} ${section} "${date}" "xennet ${version}" "${title}"`,
];

/** xennet(8). `date` is the release date (YYYY-MM-DD), so the page is reproducible. */
export function xennetManPage(commands: readonly CommandModule<object, unknown>[], o: { version: string; date: string; description: string }): string {
  const docs = commands.map(describeCommand);
  const out: string[] = [...header('xennet', 8, o.date, o.version, 'System Administration')];
  out.push('.SH NAME', `xennet \\- ${roffText(o.description.replace(/^./, (c) => c.toLowerCase()))}`);
  out.push('.SH SYNOPSIS');
  for (const d of docs) out.push('.br', `${bold('xennet')} ${roffText(d.usage)} [\\fIoptions\\fR]`);
  out.push('.SH DESCRIPTION', roffText(ROOT_USAGE));
  out.push(
    'It replaces Xen\'s network\\-bridge and vif\\-bridge scripts: it takes the NIC over into a bridge over rtnetlink, attaches each guest\'s vif as the toolstack\'s vif\\-script (vif\\-xennet), and installs each guest\'s firewall from one typed rule file, see',
    '.BR xennet.yaml (5).',
  );
  out.push('.SH COMMANDS');
  for (const d of docs) {
    out.push(`.SS ${roffText(`xennet ${d.usage}`)}`, roffText(d.describe));
    for (const opt of d.options) out.push('.TP', optionLine(opt), optionText(opt));
    if (d.examples.length > 0) {
      out.push('.PP', 'Examples:', '.RS');
      for (const [cmd, what] of d.examples) out.push('.TP', bold(withProgram(cmd)), roffText(what || ' '));
      out.push('.RE');
    }
  }
  out.push(`.SS xennet ${COMPLETION.command}`, roffText(COMPLETION.describe));
  out.push('.SH OPTIONS', '.TP', bold('--help'), 'Show help (also of each command).', '.TP', bold('--version'), 'Show the version.');
  out.push('.SH EXIT STATUS');
  for (const [code, meaning] of EXIT_CODES) out.push('.TP', bold(String(code)), roffText(meaning));
  out.push('.SH ENVIRONMENT');
  for (const [k, v] of ENVIRONMENT) out.push('.TP', bold(k), roffText(v));
  out.push('.SH FILES');
  for (const [k, v] of FILES) out.push('.TP', italic(k), roffText(v));
  out.push('.SH EXAMPLES');
  for (const [cmd, what] of ROOT_EXAMPLES) out.push('.TP', bold(withProgram(cmd)), roffText(what));
  out.push('.SH SEE ALSO', '.BR xennet.yaml (5),', '.BR xl.conf (5),', '.BR xl (1),', '.BR iptables (8),', '.BR ebtables (8),', '.BR nft (8)');
  return out.join('\n') + '\n';
}

interface SchemaNode {
  type?: string | string[];
  description?: string;
  properties?: Record<string, SchemaNode>;
  additionalProperties?: SchemaNode | boolean;
  items?: SchemaNode;
  anyOf?: SchemaNode[];
  oneOf?: SchemaNode[];
  enum?: unknown[];
  const?: unknown;
  default?: unknown;
  pattern?: string;
  minimum?: number;
  maximum?: number;
}

function typeOf(n: SchemaNode): string {
  if (n.const !== undefined) return JSON.stringify(n.const);
  if (n.enum) return n.enum.map((e) => String(e)).join(' | ');
  const alts = n.anyOf ?? n.oneOf;
  if (alts) return [...new Set(alts.map(typeOf))].join(' or ');
  if (n.type === 'array') return `list of ${n.items ? typeOf(n.items) : 'values'}`;
  if (n.type === 'object' && !n.properties && n.additionalProperties && typeof n.additionalProperties === 'object') return `map of ${typeOf(n.additionalProperties)}`;
  if (Array.isArray(n.type)) return n.type.join(' or ');
  return n.type ?? 'value';
}

/** The object properties below a node, through anyOf/oneOf alternatives, arrays and maps. */
function childrenOf(n: SchemaNode): [string, Record<string, SchemaNode>][] {
  const out: [string, Record<string, SchemaNode>][] = [];
  if (n.properties) out.push(['', n.properties]);
  for (const alt of n.anyOf ?? n.oneOf ?? []) out.push(...childrenOf(alt));
  if (n.items) out.push(...childrenOf(n.items).map(([p, c]): [string, Record<string, SchemaNode>] => [`[]${p}`, c]));
  if (n.additionalProperties && typeof n.additionalProperties === 'object') out.push(...childrenOf(n.additionalProperties).map(([p, c]): [string, Record<string, SchemaNode>] => [`.<name>${p}`, c]));
  return out;
}

/** xennet.yaml(5) from the rule file's JSON Schema. */
export function rulesManPage(schema: SchemaNode, o: { version: string; date: string }): string {
  const out: string[] = [...header('xennet.yaml', 5, o.date, o.version, 'File Formats')];
  out.push('.SH NAME', 'xennet.yaml \\- the guest firewall rule file of xennet');
  out.push('.SH SYNOPSIS', italic('/etc/xen/xennet.yaml'));
  out.push(
    '.SH DESCRIPTION',
    'A YAML file that says, per Xen domain name, what each guest may send and receive. Every guest gets complete anti\\-spoofing from xenstore\'s mac and ip even without it; the file adds addresses, allow rules, default verdicts and isolation. Unknown keys are errors; errors name the file, line, column and key.',
    'Validate it with',
    '.BR "xennet check" ,',
    'review a change with',
    '.BR "xennet plan" ,',
    'and apply it with',
    '.BR "xennet apply" .',
    'This page is written from the JSON Schema that',
    '.B xennet schema',
    'prints, which editors can use too.',
  );
  out.push('.SH KEYS');
  const seen = new Set<string>();
  const walk = (n: SchemaNode, prefix: string, depth: number): void => {
    for (const [suffix, props] of childrenOf(n)) {
      for (const [key, child] of Object.entries(props)) {
        const path = `${prefix}${suffix}${prefix || suffix ? '.' : ''}${key}`;
        if (seen.has(path)) continue;
        seen.add(path);
        out.push('.TP', `${bold(path)} (${italic(typeOf(child))})`);
        const text = [child.description ?? '', child.default !== undefined ? `Default: ${JSON.stringify(child.default)}.` : ''].filter((t) => t !== '').join(' ');
        out.push(text ? roffText(text) : '\\&');
        if (depth < 6) walk(child, path, depth + 1);
      }
    }
  };
  walk(schema, '', 0);
  out.push('.SH FILES', '.TP', italic('/etc/xen/xennet.yaml'), 'The rule file. Only this default path may be absent; a file named by \\-\\-rules or XENNET_RULES must exist.', '.TP', italic('/usr/share/doc/xennet/examples/xennet.yaml'), 'An example: a web server, an isolated tenant, a router guest.', '.TP', italic('/usr/share/xennet/xennet.schema.json'), 'The JSON Schema.');
  out.push('.SH SEE ALSO', '.BR xennet (8)');
  return out.join('\n') + '\n';
}
