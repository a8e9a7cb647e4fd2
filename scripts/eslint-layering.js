// The layering rule of eslint.config.js: each folder has an allow-list of the folders,
// packages and Node built-ins it may import; every other import is an error. It sees
// every way of loading a module: import and export ... from (also `import type`),
// `import x = require()`, `typeof import()`, dynamic import(), require(),
// require.resolve() and import.meta.resolve(), and refuses createRequire() and a module name that is not a
// literal (neither can be checked). docs/architecture.md has the table.
import { builtinModules } from 'node:module';
import { dirname, relative, resolve, sep } from 'node:path';

const BUILTINS = new Set(builtinModules);

/** 'node:fs/promises' -> 'fs'; 'fs' -> 'fs'; 'react-dom/client' -> null. */
function builtinName(spec) {
  const bare = spec.startsWith('node:') ? spec.slice('node:'.length) : spec;
  const name = bare.split('/')[0];
  return spec.startsWith('node:') || BUILTINS.has(name) ? name : null;
}

/** '@scope/pkg/sub' -> '@scope/pkg'; 'react-dom/client' -> 'react-dom'. */
function packageName(spec) {
  const parts = spec.split('/');
  return spec.startsWith('@') ? parts.slice(0, 2).join('/') : parts[0];
}

function literalOf(node) {
  if (!node) return null;
  if (node.type === 'Literal' && typeof node.value === 'string') return node.value;
  if (node.type === 'TemplateLiteral' && node.expressions.length === 0) return node.quasis[0].value.cooked;
  if (node.type === 'TSLiteralType') return literalOf(node.literal);
  return null;
}

/** @type {import('eslint').Rule.RuleModule} */
const allowedImports = {
  meta: {
    type: 'problem',
    docs: { description: 'A folder imports only what its allow-list names (docs/architecture.md).' },
    schema: [
      {
        type: 'object',
        properties: {
          layer: { type: 'string' },
          folders: { type: 'array', items: { type: 'string' } },
          packages: { type: 'array', items: { type: 'string' } },
          builtins: { type: 'boolean' },
        },
        required: ['layer', 'folders', 'packages', 'builtins'],
        additionalProperties: false,
      },
    ],
    messages: {
      folder:
        "{{layer}} may not import '{{spec}}' ({{target}}): it may import only {{allowed}} (docs/architecture.md).",
      package: "{{layer}} may not use the package '{{name}}': its packages are {{packages}} (docs/architecture.md).",
      builtin: "{{layer}} may not use the Node.js module '{{spec}}' (docs/architecture.md).",
      dynamic: '{{layer}}: {{how}} with a module name that is not a literal cannot be checked against the allow-list.',
      createRequire: '{{layer}}: createRequire() would load modules around the allow-list (docs/architecture.md).',
    },
  },
  create(context) {
    const { layer, folders, packages, builtins } = context.options[0];
    const root = context.cwd;
    const here = dirname(context.filename);
    const inFolder = (path, folder) => path === folder || path.startsWith(`${folder}/`);

    function check(node, spec) {
      if (spec.startsWith('.') || spec.startsWith('/')) {
        const target = relative(root, resolve(here, spec)).split(sep).join('/');
        if (!folders.some((f) => inFolder(target, f))) {
          context.report({ node, messageId: 'folder', data: { layer, spec, target, allowed: folders.join(', ') } });
        }
        return;
      }
      if (builtinName(spec) !== null) {
        if (!builtins) context.report({ node, messageId: 'builtin', data: { layer, spec } });
        return;
      }
      const name = packageName(spec);
      if (!packages.includes(name)) {
        context.report({ node, messageId: 'package', data: { layer, name, packages: packages.length > 0 ? packages.join(', ') : 'none' } });
      }
    }

    function checkSource(node, source, how) {
      const spec = literalOf(source);
      if (spec === null) context.report({ node, messageId: 'dynamic', data: { layer, how } });
      else check(node, spec);
    }

    return {
      ImportDeclaration(node) {
        check(node, node.source.value);
        if (node.specifiers.some((s) => s.type === 'ImportSpecifier' && (s.imported.name ?? s.imported.value) === 'createRequire')) {
          context.report({ node, messageId: 'createRequire', data: { layer } });
        }
      },
      ExportNamedDeclaration: (node) => node.source && check(node, node.source.value),
      ExportAllDeclaration: (node) => check(node, node.source.value),
      ImportExpression: (node) => checkSource(node, node.source, 'import()'),
      TSImportEqualsDeclaration: (node) => {
        if (node.moduleReference.type === 'TSExternalModuleReference') checkSource(node, node.moduleReference.expression, 'import = require()');
      },
      TSImportType: (node) => checkSource(node, node.argument, 'import() type'),
      CallExpression(node) {
        const callee = node.callee;
        const name = callee.type === 'Identifier' ? callee.name : callee.type === 'MemberExpression' && !callee.computed ? callee.property.name : null;
        if (name === 'createRequire') {
          context.report({ node, messageId: 'createRequire', data: { layer } });
          return;
        }
        // import.meta.resolve('x'): where a module would come from (to hand it to a worker thread)
        if (callee.type === 'MemberExpression' && callee.object.type === 'MetaProperty' && name === 'resolve') {
          checkSource(node, node.arguments[0], 'import.meta.resolve()');
          return;
        }
        // require('x'), require.resolve('x'), module.require('x')
        const isRequire = callee.type === 'Identifier' && callee.name === 'require';
        const isResolve = callee.type === 'MemberExpression' && callee.object.type === 'Identifier' && callee.object.name === 'require';
        if (isRequire || isResolve || name === 'require') checkSource(node, node.arguments[0], 'require()');
      },
    };
  },
};

export default { rules: { 'allowed-imports': allowedImports } };
