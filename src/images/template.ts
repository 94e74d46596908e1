/**
 * A subset of Go's text/template, enough for docker's `--format`:
 *   {{.Field}} {{.A.B}} {{.}} {{$}} {{$v.Field}}
 *   pipelines and calls: {{.Tag | upper}} {{json .}} {{index .Labels "k"}} {{(index .L "k")}}
 *   {{if …}}…{{else if …}}…{{else}}…{{end}}  {{range …}}…{{else}}…{{end}}
 *   {{range $k, $v := …}}  {{with …}}…{{end}}  trim markers {{- and -}}  comments {{/* … *\/}}
 * Functions: docker's (json, upper, lower, title, split, join, truncate, pad, println) and
 * Go's builtins (print, printf, index, len, eq, ne, lt, le, gt, ge, not, and, or).
 * Values print as Go's fmt does: slices `[a b]`, maps `map[k:v]`, a missing map key `<no value>`.
 * Pure; no I/O.
 */

export class TemplateError extends Error {
  constructor(message: string) {
    super(`template: ${message}`);
    this.name = 'TemplateError';
  }
}

/** Marks an object whose fields are fixed (a Go struct): reading an unknown field is an error. */
export const STRUCT = Symbol('template.struct');

/** Marks an object that `json` encodes itself (docker's MarshalJSON on its row contexts). */
export const TO_JSON = Symbol('template.json');

export interface Template {
  /**
   * `header: true` renders a table header the way docker does: the data is a map of column
   * titles and the formatting functions (json, upper, truncate, …) pass their argument through.
   */
  render(data: unknown, options?: { header?: boolean }): string;
}

type Node =
  | { kind: 'text'; text: string }
  | { kind: 'action'; pipe: Pipeline }
  | { kind: 'if' | 'with'; pipe: Pipeline; then: Node[]; else: Node[] }
  | { kind: 'range'; pipe: Pipeline; vars: string[]; body: Node[]; else: Node[] };

interface Pipeline {
  decl: string[];
  commands: Operand[][];
}

type Operand =
  | { kind: 'dot'; fields: string[] }
  | { kind: 'var'; name: string; fields: string[] }
  | { kind: 'literal'; value: unknown }
  | { kind: 'func'; name: string }
  | { kind: 'paren'; pipe: Pipeline; fields: string[] };

type Token =
  | { kind: 'field'; names: string[] }
  | { kind: 'dot' }
  | { kind: 'var'; name: string; fields: string[] }
  | { kind: 'string'; value: string }
  | { kind: 'number'; value: number }
  | { kind: 'ident'; name: string }
  | { kind: 'punct'; value: '|' | '(' | ')' | ':=' | '=' | ',' };

// ---------------------------------------------------------------- lexing

interface RawAction {
  text: string;
}

/** Splits the source into text and action pieces, applying `{{-` / `-}}` trimming. */
function split(source: string): (string | RawAction)[] {
  const pieces: (string | RawAction)[] = [];
  let rest = source;
  let trimNext = false;
  while (rest.length > 0) {
    const open = rest.indexOf('{{');
    let text = open === -1 ? rest : rest.slice(0, open);
    if (trimNext) text = text.replace(/^\s+/, '');
    trimNext = false;
    if (open === -1) {
      if (text) pieces.push(text);
      break;
    }
    let inner = rest.slice(open + 2);
    if (/^-\s/.test(inner)) {
      text = text.replace(/\s+$/, '');
      inner = inner.slice(1);
    }
    if (text) pieces.push(text);
    const close = findClose(inner);
    if (close === -1) throw new TemplateError('unclosed action');
    let body = inner.slice(0, close);
    if (/\s-$/.test(body)) {
      body = body.slice(0, -1);
      trimNext = true;
    }
    pieces.push({ text: body });
    rest = inner.slice(close + 2);
  }
  return pieces;
}

/** The `}}` that closes an action, skipping quoted strings. */
function findClose(inner: string): number {
  for (let i = 0; i < inner.length; i++) {
    const c = inner[i];
    if (c === '"' || c === '`') {
      const end = c === '`' ? inner.indexOf('`', i + 1) : closingQuote(inner, i);
      if (end === -1) return -1;
      i = end;
    } else if (c === '}' && inner[i + 1] === '}') {
      return i;
    }
  }
  return -1;
}

function closingQuote(text: string, start: number): number {
  for (let i = start + 1; i < text.length; i++) {
    if (text[i] === '\\') i++;
    else if (text[i] === '"') return i;
  }
  return -1;
}

const IDENT = /^[A-Za-z_][A-Za-z0-9_]*/;
const FIELD_CHAIN = /^(?:\.[A-Za-z_][A-Za-z0-9_]*)+/;

function lex(action: string): Token[] {
  const tokens: Token[] = [];
  let i = 0;
  while (i < action.length) {
    const rest = action.slice(i);
    const c = rest[0] as string;
    if (/\s/.test(c)) {
      i++;
      continue;
    }
    if (rest.startsWith(':=')) {
      tokens.push({ kind: 'punct', value: ':=' });
      i += 2;
      continue;
    }
    if (c === '|' || c === '(' || c === ')' || c === ',' || c === '=') {
      tokens.push({ kind: 'punct', value: c });
      i++;
      continue;
    }
    if (c === '"') {
      const end = closingQuote(action, i);
      if (end === -1) throw new TemplateError('unterminated quoted string');
      tokens.push({ kind: 'string', value: JSON.parse(action.slice(i, end + 1)) as string });
      i = end + 1;
      continue;
    }
    if (c === '`') {
      const end = action.indexOf('`', i + 1);
      if (end === -1) throw new TemplateError('unterminated raw quoted string');
      tokens.push({ kind: 'string', value: action.slice(i + 1, end) });
      i = end + 1;
      continue;
    }
    const chain = FIELD_CHAIN.exec(rest);
    if (chain) {
      tokens.push({ kind: 'field', names: chain[0].slice(1).split('.') });
      i += chain[0].length;
      continue;
    }
    if (c === '.') {
      tokens.push({ kind: 'dot' });
      i++;
      continue;
    }
    if (c === '$') {
      const name = /^\$[A-Za-z0-9_]*/.exec(rest)?.[0] ?? '$';
      const fields = FIELD_CHAIN.exec(rest.slice(name.length))?.[0] ?? '';
      tokens.push({ kind: 'var', name, fields: fields ? fields.slice(1).split('.') : [] });
      i += name.length + fields.length;
      continue;
    }
    const number = /^-?\d+(?:\.\d+)?/.exec(rest);
    if (number) {
      tokens.push({ kind: 'number', value: Number(number[0]) });
      i += number[0].length;
      continue;
    }
    const ident = IDENT.exec(rest);
    if (ident) {
      tokens.push({ kind: 'ident', name: ident[0] });
      i += ident[0].length;
      continue;
    }
    throw new TemplateError(`unexpected ${JSON.stringify(c)} in command`);
  }
  return tokens;
}

// ---------------------------------------------------------------- parsing

class Parser {
  private pieces: (string | RawAction)[];
  private at = 0;

  constructor(source: string) {
    this.pieces = split(source);
  }

  parse(): Node[] {
    const { nodes, end } = this.list();
    if (end) throw new TemplateError(`unexpected {{${end}}}`);
    return nodes;
  }

  /** Nodes up to an `{{else…}}` or `{{end}}` (returned as `end`), or the end of input. */
  private list(): { nodes: Node[]; end?: string; elseRest?: string } {
    const nodes: Node[] = [];
    while (this.at < this.pieces.length) {
      const piece = this.pieces[this.at++] as string | RawAction;
      if (typeof piece === 'string') {
        nodes.push({ kind: 'text', text: piece });
        continue;
      }
      const text = piece.text.trim();
      if (text.startsWith('/*')) {
        if (!text.endsWith('*/')) throw new TemplateError('unclosed comment');
        continue;
      }
      const keyword = /^(if|range|with|else|end)\b/.exec(text)?.[1];
      if (keyword === 'end') return { nodes, end: 'end' };
      if (keyword === 'else') return { nodes, end: 'else', elseRest: text.slice(4).trim() };
      if (keyword === 'if' || keyword === 'with') {
        nodes.push(this.conditional(keyword, text.slice(keyword.length)));
        continue;
      }
      if (keyword === 'range') {
        nodes.push(this.range(text.slice(5)));
        continue;
      }
      const tokens = lex(text);
      if (tokens.length === 0) throw new TemplateError('missing value for command');
      nodes.push({ kind: 'action', pipe: pipeline(tokens) });
    }
    return { nodes };
  }

  private conditional(kind: 'if' | 'with', condition: string): Node {
    const pipe = pipeline(lex(condition));
    const body = this.list();
    const node: Node = { kind, pipe, then: body.nodes, else: [] };
    if (body.end === undefined) throw new TemplateError(`unexpected EOF in {{${kind}}}`);
    if (body.end === 'else') {
      const chained = /^(if|with)\b/.exec(body.elseRest ?? '')?.[1] as 'if' | 'with' | undefined;
      if (chained) {
        // {{else if x}} is {{else}}{{if x}}…{{end}} sharing the outer {{end}}.
        node.else = [this.conditional(chained, (body.elseRest ?? '').slice(chained.length))];
      } else {
        if (body.elseRest) throw new TemplateError(`unexpected ${JSON.stringify(body.elseRest)} in else`);
        const rest = this.list();
        if (rest.end !== 'end') throw new TemplateError(`expected {{end}} after {{else}} in {{${kind}}}`);
        node.else = rest.nodes;
      }
    }
    return node;
  }

  private range(header: string): Node {
    const tokens = lex(header);
    let vars: string[] = [];
    const declAt = tokens.findIndex((t) => t.kind === 'punct' && t.value === ':=');
    if (declAt !== -1) {
      vars = tokens
        .slice(0, declAt)
        .filter((t) => !(t.kind === 'punct' && t.value === ','))
        .map((t) => {
          if (t.kind !== 'var' || t.fields.length > 0) throw new TemplateError('range can only initialize variables');
          return t.name;
        });
      if (vars.length === 0 || vars.length > 2) throw new TemplateError('too many declarations in range');
    }
    const pipe = pipeline(tokens.slice(declAt + 1));
    const body = this.list();
    if (body.end === undefined) throw new TemplateError('unexpected EOF in {{range}}');
    const node: Node = { kind: 'range', pipe, vars, body: body.nodes, else: [] };
    if (body.end === 'else') {
      const rest = this.list();
      if (rest.end !== 'end') throw new TemplateError('expected {{end}} after {{else}} in {{range}}');
      node.else = rest.nodes;
    }
    return node;
  }
}

function pipeline(tokens: Token[]): Pipeline {
  let decl: string[] = [];
  let rest = tokens;
  const declAt = tokens.findIndex((t) => t.kind === 'punct' && (t.value === ':=' || t.value === '='));
  if (declAt === 1 && tokens[0]?.kind === 'var') {
    decl = [tokens[0].name];
    rest = tokens.slice(2);
  }
  const { pipe, used } = parsePipe(rest, 0);
  if (used !== rest.length) throw new TemplateError('unexpected ")" in command');
  return { decl, commands: pipe.commands };
}

function parsePipe(tokens: Token[], start: number): { pipe: Pipeline; used: number } {
  const commands: Operand[][] = [];
  let command: Operand[] = [];
  let i = start;
  for (; i < tokens.length; i++) {
    const token = tokens[i] as Token;
    if (token.kind === 'punct' && token.value === ')') break;
    if (token.kind === 'punct' && token.value === '|') {
      if (command.length === 0) throw new TemplateError('missing command before "|"');
      commands.push(command);
      command = [];
      continue;
    }
    if (token.kind === 'punct' && token.value === '(') {
      const inner = parsePipe(tokens, i + 1);
      if (tokens[inner.used]?.kind !== 'punct') throw new TemplateError('unclosed left paren');
      i = inner.used;
      let fields: string[] = [];
      const next = tokens[i + 1];
      if (next?.kind === 'field') {
        fields = next.names;
        i++;
      }
      command.push({ kind: 'paren', pipe: inner.pipe, fields });
      continue;
    }
    command.push(operand(token));
  }
  if (command.length === 0) throw new TemplateError('missing value for command');
  commands.push(command);
  return { pipe: { decl: [], commands }, used: i };
}

function operand(token: Token): Operand {
  switch (token.kind) {
    case 'field':
      return { kind: 'dot', fields: token.names };
    case 'dot':
      return { kind: 'dot', fields: [] };
    case 'var':
      return { kind: 'var', name: token.name, fields: token.fields };
    case 'string':
    case 'number':
      return { kind: 'literal', value: token.value };
    case 'ident':
      if (token.name === 'true' || token.name === 'false') return { kind: 'literal', value: token.name === 'true' };
      if (token.name === 'nil') return { kind: 'literal', value: null };
      if (!Object.hasOwn(FUNCTIONS, token.name)) throw new TemplateError(`function ${JSON.stringify(token.name)} not defined`);
      return { kind: 'func', name: token.name };
    case 'punct':
      throw new TemplateError(`unexpected ${JSON.stringify(token.value)} in operand`);
  }
}

// ---------------------------------------------------------------- values and functions

/** Go's fmt `%v` for JSON-like values. */
export function goPrint(value: unknown): string {
  if (value === undefined) return '<no value>';
  if (value === null) return '<nil>';
  if (typeof value === 'string') return value;
  if (typeof value === 'number' || typeof value === 'boolean' || typeof value === 'bigint') return String(value);
  if (value instanceof Date) return value.toISOString();
  if (Array.isArray(value)) return `[${value.map((v) => (v === undefined ? '<nil>' : goPrint(v))).join(' ')}]`;
  if (typeof value === 'object') {
    const entries = Object.keys(value)
      .sort()
      .map((k) => `${k}:${goPrint((value as Record<string, unknown>)[k] ?? null)}`);
    return `map[${entries.join(' ')}]`;
  }
  return String(value);
}

/** Go's encoding/json escapes <, > and & (and U+2028/9) unless told not to; docker's API does. */
export function goJson(value: unknown, indent?: string): string {
  return escapeHtml(JSON.stringify(toJsonable(value), null, indent) ?? 'null');
}

export function escapeHtml(json: string): string {
  return json.replace(/[<>&\u2028\u2029]/g, (c) => `\\u${(c.codePointAt(0) ?? 0).toString(16).padStart(4, '0')}`);
}

function toJsonable(value: unknown): unknown {
  if (value !== null && typeof value === 'object' && TO_JSON in value) {
    return (value as { [TO_JSON]: () => unknown })[TO_JSON]();
  }
  return value;
}

function truthy(value: unknown): boolean {
  if (value === undefined || value === null || value === false || value === 0 || value === '') return false;
  if (Array.isArray(value)) return value.length > 0;
  if (typeof value === 'object' && !(STRUCT in value)) return Object.keys(value).length > 0;
  return true;
}

function text(value: unknown): string {
  return typeof value === 'string' ? value : goPrint(value);
}

/** Go's fmt.Sprintf for the common verbs. */
function sprintf(format: string, args: unknown[]): string {
  let n = 0;
  return format.replace(/%([-+ 0#]*)(\d+)?(?:\.(\d+))?([vsdqfgtx%])/g, (_m, flags: string, width?: string, precision?: string, verb?: string) => {
    if (verb === '%') return '%';
    const arg = args[n++];
    let out: string;
    switch (verb) {
      case 'd':
        out = String(Math.trunc(Number(arg)));
        break;
      case 'f':
        out = Number(arg).toFixed(precision === undefined ? 6 : Number(precision));
        break;
      case 'q':
        out = JSON.stringify(text(arg));
        break;
      case 'x':
        out = typeof arg === 'number' ? arg.toString(16) : Buffer.from(text(arg)).toString('hex');
        break;
      default:
        out = text(arg);
        if (precision !== undefined && verb === 's') out = out.slice(0, Number(precision));
    }
    if (width !== undefined) out = flags.includes('-') ? out.padEnd(Number(width)) : out.padStart(Number(width), flags.includes('0') ? '0' : ' ');
    return out;
  });
}

function compare(a: unknown, b: unknown): number {
  if (typeof a === 'number' && typeof b === 'number') return a - b;
  if (typeof a === 'string' && typeof b === 'string') return a < b ? -1 : a > b ? 1 : 0;
  throw new TemplateError('incompatible types for comparison');
}

const FUNCTIONS: Record<string, (...args: unknown[]) => unknown> = {
  // docker's template functions (docker/cli templates/templates.go)
  json: (v) => {
    const subject = toJsonable(v);
    // docker encodes with SetEscapeHTML(false), except for contexts that marshal themselves.
    const encoded = JSON.stringify(subject) ?? 'null';
    return subject !== v ? escapeHtml(encoded) : encoded;
  },
  split: (s, sep) => text(s).split(text(sep)),
  join: (list, sep) => (Array.isArray(list) ? list.map(text).join(text(sep)) : text(list)),
  title: (s) => text(s).replace(/(^|[^\p{L}\p{N}_'])(\p{L})/gu, (_m, before: string, first: string) => `${before}${first.toUpperCase()}`),
  lower: (s) => text(s).toLowerCase(),
  upper: (s) => text(s).toUpperCase(),
  pad: (s, left, right) => `${' '.repeat(Number(left))}${text(s)}${' '.repeat(Number(right))}`,
  truncate: (s, n) => [...text(s)].slice(0, Math.max(0, Number(n))).join(''),
  println: (...args) => `${args.map(text).join(' ')}\n`,
  // Go builtins
  print: (...args) => args.map(text).join(''),
  printf: (format, ...args) => sprintf(text(format), args),
  index: (collection, ...keys) => {
    let current = collection;
    for (const key of keys) {
      if (current === null || current === undefined) throw new TemplateError('index of untyped nil');
      if (Array.isArray(current)) {
        const i = Number(key);
        if (!Number.isInteger(i) || i < 0 || i >= current.length) throw new TemplateError(`index out of range: ${goPrint(key)}`);
        current = current[i];
      } else if (typeof current === 'object') {
        current = Object.hasOwn(current, String(key)) ? (current as Record<string, unknown>)[String(key)] : undefined;
      } else {
        throw new TemplateError(`can't index item of type ${typeof current}`);
      }
    }
    return current;
  },
  len: (v) => {
    if (typeof v === 'string' || Array.isArray(v)) return v.length;
    if (v !== null && typeof v === 'object') return Object.keys(v).length;
    throw new TemplateError(`len of ${goPrint(v)}`);
  },
  eq: (a, ...rest) => rest.some((b) => a === b),
  ne: (a, b) => a !== b,
  lt: (a, b) => compare(a, b) < 0,
  le: (a, b) => compare(a, b) <= 0,
  gt: (a, b) => compare(a, b) > 0,
  ge: (a, b) => compare(a, b) >= 0,
  not: (v) => !truthy(v),
  and: (...args) => args.find((a) => !truthy(a)) ?? args[args.length - 1],
  or: (...args) => args.find((a) => truthy(a)) ?? args[args.length - 1],
};

// ---------------------------------------------------------------- execution

class Scope {
  private vars: Map<string, unknown>;
  readonly header: boolean;
  constructor(parent?: Scope, header = false) {
    this.vars = new Map(parent?.vars);
    this.header = parent?.header ?? header;
  }
  get(name: string): unknown {
    if (!this.vars.has(name)) throw new TemplateError(`undefined variable: ${name}`);
    return this.vars.get(name);
  }
  set(name: string, value: unknown): void {
    this.vars.set(name, value);
  }
}

function field(value: unknown, name: string, path: string): unknown {
  if (value === null || value === undefined) {
    throw new TemplateError(`executing at <${path}>: nil pointer evaluating ${name}`);
  }
  if (typeof value !== 'object' || Array.isArray(value)) {
    throw new TemplateError(`executing at <${path}>: can't evaluate field ${name} in type ${Array.isArray(value) ? 'slice' : typeof value}`);
  }
  if (Object.hasOwn(value, name)) return (value as Record<string, unknown>)[name];
  if (STRUCT in value) throw new TemplateError(`executing at <${path}>: can't evaluate field ${name}`);
  return undefined;
}

function fields(value: unknown, names: string[], prefix: string): unknown {
  let current = value;
  let path = prefix;
  for (const name of names) {
    path = `${path === '.' ? '' : path}.${name}`;
    current = field(current, name, path);
  }
  return current;
}

function evalPipeline(pipe: Pipeline, dot: unknown, scope: Scope): unknown {
  let value: unknown;
  let piped = false;
  for (const command of pipe.commands) {
    value = evalCommand(command, dot, scope, piped ? [value] : []);
    piped = true;
  }
  for (const name of pipe.decl) scope.set(name, value);
  return value;
}

/** docker's HeaderFunctions: in a table header these print the column title unchanged. */
const HEADER_PASS_THROUGH = new Set(['json', 'split', 'join', 'title', 'lower', 'upper', 'truncate', 'pad']);

function evalCommand(command: Operand[], dot: unknown, scope: Scope, piped: unknown[]): unknown {
  const [head, ...args] = command as [Operand, ...Operand[]];
  if (head.kind === 'func') {
    const values = [...args.map((a) => evalOperand(a, dot, scope)), ...piped];
    if (scope.header && HEADER_PASS_THROUGH.has(head.name)) return values[0];
    return (FUNCTIONS[head.name] as (...a: unknown[]) => unknown)(...values);
  }
  if (args.length > 0 || piped.length > 0) throw new TemplateError("can't give argument to non-function");
  return evalOperand(head, dot, scope);
}

function evalOperand(op: Operand, dot: unknown, scope: Scope): unknown {
  switch (op.kind) {
    case 'dot':
      return fields(dot, op.fields, '.');
    case 'var':
      return fields(scope.get(op.name), op.fields, op.name);
    case 'literal':
      return op.value;
    case 'paren':
      return fields(evalPipeline(op.pipe, dot, scope), op.fields, '(…)');
    case 'func':
      return (FUNCTIONS[op.name] as () => unknown)();
  }
}

function execute(nodes: Node[], dot: unknown, scope: Scope, out: string[]): void {
  for (const node of nodes) {
    switch (node.kind) {
      case 'text':
        out.push(node.text);
        break;
      case 'action': {
        const value = evalPipeline(node.pipe, dot, scope);
        if (node.pipe.decl.length === 0) out.push(goPrint(value));
        break;
      }
      case 'if':
      case 'with': {
        const inner = new Scope(scope);
        const value = evalPipeline(node.pipe, dot, inner);
        if (truthy(value)) execute(node.then, node.kind === 'with' ? value : dot, inner, out);
        else execute(node.else, dot, inner, out);
        break;
      }
      case 'range': {
        const inner = new Scope(scope);
        const value = evalPipeline(node.pipe, dot, inner);
        let items: [unknown, unknown][] = [];
        if (Array.isArray(value)) items = value.map((v, i) => [i, v]);
        else if (typeof value === 'number') items = Array.from({ length: value }, (_, i) => [i, i]);
        else if (value !== null && typeof value === 'object') {
          items = Object.keys(value)
            .sort()
            .map((k) => [k, (value as Record<string, unknown>)[k]]);
        } else if (value !== null && value !== undefined) throw new TemplateError(`range can't iterate over ${goPrint(value)}`);
        if (items.length === 0) execute(node.else, dot, inner, out);
        for (const [key, item] of items) {
          if (node.vars.length === 1) inner.set(node.vars[0] as string, item);
          if (node.vars.length === 2) {
            inner.set(node.vars[0] as string, key);
            inner.set(node.vars[1] as string, item);
          }
          execute(node.body, item, inner, out);
        }
        break;
      }
    }
  }
}

/** Parses once; throws TemplateError on a syntax error or an unknown function. */
export function parseTemplate(source: string): Template {
  const nodes = new Parser(source).parse();
  return {
    render(data: unknown, options: { header?: boolean } = {}): string {
      const scope = new Scope(undefined, options.header ?? false);
      scope.set('$', data);
      const out: string[] = [];
      execute(nodes, data, scope, out);
      return out.join('');
    },
  };
}
