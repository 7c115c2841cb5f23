import { NeuwerkError } from '../errors.js';

/**
 * A tiny template syntax for configuration files: `{{name}}` is a scalar and
 * `{{#list}}...{{/list}}` repeats its body once per record of `list` (one level, no nesting).
 * A block tag alone on its line takes its line break with it, so templates read like the output.
 *
 * Values are never escaped: a value holding whitespace, a quote, a backslash, `#` or a control
 * character could split or comment out a configuration line, so rendering refuses it instead.
 */
export type TemplateScalar = string | number;
export type TemplateRecord = Readonly<Record<string, TemplateScalar>>;
export type TemplateView = Readonly<Record<string, TemplateScalar | readonly TemplateRecord[]>>;

const UNSAFE_VALUE = /[\s"'\\#\p{Cc}]/u;
const BLOCK = /^[ \t]*\{\{#([A-Za-z_][A-Za-z0-9_]*)\}\}[ \t]*\n([\s\S]*?)^[ \t]*\{\{\/\1\}\}[ \t]*(?:\n|$)/gm;
const SCALAR = /\{\{([^{}]*)\}\}/g;
const NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

/** Renders `template` with `view`; a missing, unsafe or wrongly shaped value is an error naming it. */
export function renderTemplate(template: string, view: TemplateView): string {
  const expanded = template.replace(BLOCK, (_match, name: string, body: string) => {
    const list = view[name];
    if (!Array.isArray(list)) throw templateError(`{{#${name}}} needs a list named "${name}"`);
    return (list as readonly TemplateRecord[]).map((record) => substitute(body, record, `${name}.`)).join('');
  });
  return substitute(expanded, view, '');
}

function substitute(text: string, values: TemplateView | TemplateRecord, prefix: string): string {
  return text.replace(SCALAR, (_match, rawName: string) => {
    const name = rawName.trim();
    if (!NAME.test(name)) throw templateError(`unsupported tag {{${rawName}}} (unclosed or nested block?)`);
    const value = values[name];
    if (value === undefined) throw templateError(`no value for {{${prefix}${name}}}`);
    if (typeof value !== 'string' && typeof value !== 'number') throw templateError(`{{${prefix}${name}}} is a list, not a value`);
    const text = String(value);
    if (text.length === 0) throw templateError(`{{${prefix}${name}}} is empty`);
    if (UNSAFE_VALUE.test(text)) {
      throw templateError(`{{${prefix}${name}}} = ${JSON.stringify(text)} holds whitespace, a quote, a backslash, "#" or a control character; refusing to write it into the configuration`);
    }
    return text;
  });
}

function templateError(message: string): NeuwerkError {
  return new NeuwerkError('NW_ERR_USAGE', `template: ${message}`);
}
