#!/usr/bin/env python3
"""Drive rackboot's Ironic-compatible API through the real `baremetal` CLI.

Usage:
    .venv/bin/python tests/integration/cli_resources.py http://127.0.0.1:PORT [--keep-going]

Runs `baremetal` (python-ironicclient, from the same venv) the way an
operator's scripts do, with OS_ENDPOINT pointing at the server, over every
resource beside nodes and ports: chassis, conductors, port groups, node
traits, allocations, deploy templates, runbooks, inspection rules, volume
connectors and targets, VIFs, and the node's BIOS and firmware listings.
Prints one line per check; exits 1 at the first failed check (with
--keep-going: after all of them, if any failed).
"""

import json
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from checks import Abort, Tally, eq, ok  # noqa: E402

BAREMETAL = os.path.join(os.path.dirname(sys.executable), 'baremetal')
ENV = {}


def run(*args, check=True):
    """Runs `baremetal ARGS`; returns (exit status, stdout, stderr)."""
    p = subprocess.run([BAREMETAL, *args], env=ENV, capture_output=True,
                       text=True, timeout=120)
    if check and p.returncode != 0:
        raise Abort(f'baremetal {" ".join(args)} failed ({p.returncode}): '
                    f'{p.stderr.strip()}')
    return p.returncode, p.stdout, p.stderr


def js(*args):
    """Runs `baremetal ARGS -f json` and decodes its output."""
    _, out, _ = run(*args, '-f', 'json')
    return json.loads(out)


def rows(*args):
    """Runs a `list -f json` and returns its rows with the column names as
    field names (`Resource Class` -> `resource_class`)."""
    return [{k.lower().replace(' ', '_'): v for k, v in r.items()} for r in js(*args)]


def fails(args, what, contains):
    """Checks `baremetal ARGS` fails with a message containing `contains`."""
    rc, out, err = run(*args, check=False)
    text = out + err
    ok(rc != 0 and contains.lower() in text.lower(), what,
       f'exit {rc}, output {text.strip()!r}')


def section_chassis(st):
    c = js('chassis', 'create', '--description', 'cli rack', '--extra', 'row=4')
    st['chassis'] = c['uuid']
    eq(c['description'], 'cli rack', 'chassis: create')
    eq(js('chassis', 'show', c['uuid'])['extra'], {'row': 4}, 'chassis: show')
    listed = rows('chassis', 'list', '--long')
    ok(any(x['uuid'] == c['uuid'] for x in listed), 'chassis: list --long', listed)
    run('chassis', 'set', c['uuid'], '--description', 'cli rack 2')
    eq(js('chassis', 'show', c['uuid'], '--fields', 'description'),
       {'description': 'cli rack 2'}, 'chassis: set, show --fields')
    n = js('node', 'create', '--driver', 'fake-hardware', '--name', 'cli-in-rack',
           '--chassis-uuid', c['uuid'])
    st['nodes'].append(n['uuid'])
    names = [x['name'] for x in rows('node', 'list', '--chassis', c['uuid'])]
    eq(names, ['cli-in-rack'], 'chassis: node list --chassis')
    fails(['chassis', 'delete', c['uuid']], 'chassis: delete with nodes refused',
          'contains nodes')
    fails(['chassis', 'show', '00000000-1111-2222-3333-444444444444'],
          'chassis: missing', 'could not be found')


def section_conductors(st):
    listed = rows('conductor', 'list')
    eq(len(listed), 1, 'conductors: one conductor (this appliance)')
    c = js('conductor', 'show', listed[0]['hostname'])
    eq(c['alive'], True, 'conductors: alive')
    ok('fake-hardware' in c['drivers'], 'conductors: drivers', c['drivers'])
    fails(['conductor', 'show', 'no-such-host'], 'conductors: missing',
          'could not be found')


def section_port_groups(st):
    n = js('node', 'create', '--driver', 'fake-hardware', '--name', 'cli-bond')
    st['nodes'].append(n['uuid'])
    g = js('port', 'group', 'create', '--node', n['uuid'], '--name', 'cli-bond0',
           '--address', '52:54:00:aa:00:01', '--mode', '802.3ad',
           '--property', 'miimon=100')
    eq((g['name'], g['mode'], g['properties']), ('cli-bond0', '802.3ad', {'miimon': 100}),
       'port groups: create')
    p = js('port', 'create', '52:54:00:aa:00:02', '--node', n['uuid'],
           '--port-group', g['uuid'])
    eq(p['portgroup_uuid'], g['uuid'], 'port groups: port in the group')
    listed = rows('port', 'list', '--port-group', g['uuid'])
    eq([x['address'] for x in listed], ['52:54:00:aa:00:02'], 'port groups: port list --port-group')
    run('port', 'group', 'set', 'cli-bond0', '--extra', 'switch=sw1')
    eq(js('port', 'group', 'show', 'cli-bond0')['extra'], {'switch': 'sw1'},
       'port groups: set --extra')
    fails(['port', 'group', 'delete', 'cli-bond0'], 'port groups: delete with ports refused',
          'ports')
    run('port', 'delete', p['uuid'])
    run('port', 'group', 'delete', 'cli-bond0')
    fails(['port', 'group', 'show', 'cli-bond0'], 'port groups: deleted', 'could not be found')


def section_traits(st):
    n = js('node', 'create', '--driver', 'fake-hardware', '--name', 'cli-traits',
           '--resource-class', 'cli-rc')
    st['nodes'].append(n['uuid'])
    run('node', 'add', 'trait', 'cli-traits', 'CUSTOM_GPU', 'HW_CPU_X86_AVX2')
    _, out, _ = run('node', 'trait', 'list', 'cli-traits', '-f', 'value')
    eq(sorted(out.split()), ['CUSTOM_GPU', 'HW_CPU_X86_AVX2'], 'traits: add, list')
    run('node', 'remove', 'trait', 'cli-traits', 'HW_CPU_X86_AVX2')
    _, out, _ = run('node', 'trait', 'list', 'cli-traits', '-f', 'value')
    eq(out.split(), ['CUSTOM_GPU'], 'traits: remove')
    fails(['node', 'add', 'trait', 'cli-traits', 'not-a-trait'],
          'traits: bad name refused', 'CUSTOM_')
    fails(['node', 'remove', 'trait', 'cli-traits', 'CUSTOM_NOPE'],
          'traits: removing a missing trait', 'CUSTOM_NOPE')


def section_allocations(st):
    node = 'cli-traits'
    run('node', 'manage', node, '--wait', '60')
    run('node', 'provide', node, '--wait', '60')
    a = js('allocation', 'create', '--resource-class', 'cli-rc', '--trait', 'CUSTOM_GPU',
           '--name', 'cli-alloc', '--extra', 'ticket=42', '--wait', '60')
    eq((a['state'], a['node_uuid']), ('active', st['nodes'][-1]),
       'allocations: create --wait picks the node with the trait')
    n = js('node', 'show', node)
    eq((n['allocation_uuid'], n['instance_uuid']), (a['uuid'], a['uuid']),
       'allocations: the node carries the allocation')
    listed = rows('allocation', 'list', '--node', node)
    eq([x['uuid'] for x in listed], [a['uuid']], 'allocations: list --node')
    listed = rows('allocation', 'list', '--state', 'active', '--resource-class', 'cli-rc')
    eq([x['uuid'] for x in listed], [a['uuid']], 'allocations: list --state --resource-class')
    run('allocation', 'set', 'cli-alloc', '--extra', 'ticket=43', '--name', 'cli-alloc2')
    s = js('allocation', 'show', a['uuid'])
    eq((s['extra'], s['name']), ({'ticket': 43}, 'cli-alloc2'), 'allocations: set')
    run('allocation', 'set', 'cli-alloc2', '--name', 'cli-alloc')
    run('allocation', 'unset', 'cli-alloc', '--extra', 'ticket')
    eq(js('allocation', 'show', 'cli-alloc')['extra'], {}, 'allocations: unset')
    rc, out, err = run('allocation', 'create', '--resource-class', 'cli-rc', '--wait', '60',
                       check=False)
    ok(rc != 0 and 'no available nodes' in (out + err).lower(),
       'allocations: none left -> error', out + err)
    failed = [x for x in rows('allocation', 'list', '--state', 'error')
              if x['resource_class'] == 'cli-rc']
    eq(len(failed), 1, 'allocations: the failed one is listed in error')
    for x in failed:
        run('allocation', 'delete', x['uuid'])
    run('allocation', 'delete', 'cli-alloc')
    n = js('node', 'show', node)
    eq((n['allocation_uuid'], n['instance_uuid']), (None, None),
       'allocations: delete frees the node')
    fails(['allocation', 'show', 'cli-alloc'], 'allocations: deleted', 'could not be found')


def section_deploy_templates(st):
    steps = json.dumps([{'interface': 'bios', 'step': 'apply_configuration',
                         'args': {'settings': [{'name': 'LogicalProc', 'value': 'Enabled'}]},
                         'priority': 150}])
    t = js('deploy', 'template', 'create', 'CUSTOM_CLI_HT', '--steps', steps,
           '--extra', 'a=b')
    eq(t['steps'][0]['priority'], 150, 'deploy templates: create')
    st['templates'].append(t['uuid'])
    names = [x['name'] for x in rows('deploy', 'template', 'list')]
    ok('CUSTOM_CLI_HT' in names, 'deploy templates: list', names)
    long = rows('deploy', 'template', 'list', '--long')
    ok(any(x['name'] == 'CUSTOM_CLI_HT' and x['steps'] for x in long),
       'deploy templates: list --long has steps', long)
    run('deploy', 'template', 'set', 'CUSTOM_CLI_HT', '--name', 'CUSTOM_CLI_HT2')
    run('deploy', 'template', 'unset', 'CUSTOM_CLI_HT2', '--extra', 'a')
    s = js('deploy', 'template', 'show', t['uuid'])
    eq((s['name'], s['extra']), ('CUSTOM_CLI_HT2', {}), 'deploy templates: set, unset')
    fails(['deploy', 'template', 'create', 'cli-ht', '--steps', steps],
          'deploy templates: a name that is not a trait', "'name'")
    fails(['deploy', 'template', 'create', 'CUSTOM_CLI_X', '--steps', '[{"interface": "bios"}]'],
          'deploy templates: a step without its fields', 'is a required property')
    run('deploy', 'template', 'delete', 'CUSTOM_CLI_HT2')
    fails(['deploy', 'template', 'show', 'CUSTOM_CLI_HT2'], 'deploy templates: deleted',
          'could not be found')


def section_volume(st):
    n = js('node', 'create', '--driver', 'fake-hardware', '--name', 'cli-vol')
    st['nodes'].append(n['uuid'])
    c = js('volume', 'connector', 'create', '--node', n['uuid'], '--type', 'iqn',
           '--connector-id', 'iqn.2026-12.org.example:cli')
    eq((c['type'], c['node_uuid']), ('iqn', n['uuid']), 'volume: connector create')
    fails(['volume', 'connector', 'create', '--node', n['uuid'], '--type', 'iqn',
           '--connector-id', 'iqn.2026-12.org.example:cli'],
          'volume: duplicate connector', 'already exists')
    t = js('volume', 'target', 'create', '--node', n['uuid'], '--type', 'iscsi',
           '--boot-index', '0', '--volume-id', 'vol-a', '--property', 'auth_password=s3cret')
    eq(t['properties'], {'auth_password': '******'}, 'volume: target properties masked')
    fails(['volume', 'target', 'create', '--node', n['uuid'], '--type', 'iscsi',
           '--boot-index', '0', '--volume-id', 'vol-b'],
          'volume: a second target at boot index 0', "boot index '0'")
    eq([x['uuid'] for x in rows('volume', 'connector', 'list', '--node', 'cli-vol')],
       [c['uuid']], 'volume: connector list --node')
    eq([x['volume_id'] for x in rows('volume', 'target', 'list', '--node', n['uuid'], '--long')],
       ['vol-a'], 'volume: target list --node --long')
    run('node', 'power', 'on', 'cli-vol')
    fails(['volume', 'target', 'set', t['uuid'], '--volume-id', 'vol-c'],
          'volume: update refused while powered on', 'while it is in state "power on"')
    run('node', 'power', 'off', 'cli-vol')
    run('volume', 'target', 'set', t['uuid'], '--volume-id', 'vol-c')
    eq(js('volume', 'target', 'show', t['uuid'])['volume_id'], 'vol-c',
       'volume: update once powered off')
    run('volume', 'connector', 'unset', c['uuid'], '--extra', 'nope', check=False)
    run('volume', 'connector', 'delete', c['uuid'])
    fails(['volume', 'connector', 'show', c['uuid']], 'volume: connector deleted',
          'could not be found')
    run('node', 'delete', 'cli-vol')
    st['nodes'].remove(n['uuid'])
    fails(['volume', 'target', 'show', t['uuid']], 'volume: node deletion takes its targets',
          'could not be found')


def section_runbooks(st):
    steps = json.dumps([{'interface': 'bios', 'step': 'apply_configuration',
                         'args': {'settings': [], 'admin_password': 'pw'}, 'order': 1},
                        {'interface': 'management', 'step': 'update_firmware', 'order': '2'}])
    r = js('runbook', 'create', '--name', 'cli-fw-2026', '--steps', steps,
           '--description', 'quarterly firmware', '--os-baremetal-api-version', '1.115')
    st['runbooks'].append(r['uuid'])
    eq([x['order'] for x in r['steps']], [1, 2], 'runbooks: create reads orders as numbers')
    eq(r['steps'][0]['args']['admin_password'], '******', 'runbooks: step secrets masked')
    eq(r['steps'][1]['args'], {}, 'runbooks: args default to {}')
    fails(['runbook', 'create', '--name', 'cli-fw-old', '--steps', steps,
           '--os-baremetal-api-version', '1.100'],
          'runbooks: before 1.112 the name must be a trait', 'CUSTOM_')
    run('runbook', 'trait', 'add', 'cli-fw-2026', 'CUSTOM_FW_A', 'CUSTOM_FW_B',
        '--os-baremetal-api-version', '1.115')
    _, out, _ = run('runbook', 'trait', 'list', 'cli-fw-2026', '-f', 'value',
                    '--os-baremetal-api-version', '1.115')
    eq(out.split(), ['CUSTOM_FW_A', 'CUSTOM_FW_B'], 'runbooks: traits add, list')
    run('runbook', 'trait', 'remove', 'cli-fw-2026', 'CUSTOM_FW_A',
        '--os-baremetal-api-version', '1.115')
    run('runbook', 'set', 'cli-fw-2026', '--owner', 'team-a', '--extra', 'k=v',
        '--os-baremetal-api-version', '1.115')
    s = js('runbook', 'show', 'cli-fw-2026', '--os-baremetal-api-version', '1.115')
    eq((s['owner'], s['extra'], s['traits']), ('team-a', {'k': 'v'}, ['CUSTOM_FW_B']),
       'runbooks: set owner and extra, trait removed')
    names = [x['name'] for x in rows('runbook', 'list', '--os-baremetal-api-version', '1.115')]
    ok('cli-fw-2026' in names, 'runbooks: list', names)
    run('runbook', 'delete', 'cli-fw-2026', '--os-baremetal-api-version', '1.115')
    fails(['runbook', 'show', 'cli-fw-2026', '--os-baremetal-api-version', '1.115'],
          'runbooks: deleted', 'Runbook cli-fw-2026 could not be found')


def section_inspection_rules(st):
    v = ['--os-baremetal-api-version', '1.115']
    conds = json.dumps([{'op': 'eq', 'args': {'values': ['{inventory[cpu][architecture]}', 'x86_64']}}])
    acts = json.dumps([{'op': 'set-attribute', 'args': ['/resource_class', 'x86']}])
    r = js('inspection', 'rule', 'create', '--description', 'cli rc', '--priority', '10',
           '--conditions', conds, '--actions', acts, *v)
    st['rules'].append(r['uuid'])
    eq((r['priority'], r['phase']), (10, 'main'), 'inspection rules: create')
    eq(r['actions'][0]['args'], {'path': '/resource_class', 'value': 'x86'},
       'inspection rules: list arguments read by the operator')
    only = js('inspection', 'rule', 'create', '--actions',
              json.dumps([{'op': 'log', 'args': {'msg': 'seen'}}]), *v)
    st['rules'].append(only['uuid'])
    eq(only['conditions'], [], 'inspection rules: no conditions')
    listed = rows('inspection', 'rule', 'list', '--long', *v)
    eq({x['uuid'] for x in listed}, {r['uuid'], only['uuid']}, 'inspection rules: list --long')
    run('inspection', 'rule', 'set', r['uuid'], '--priority', '20', '--description', 'cli rc 2', *v)
    s = js('inspection', 'rule', 'show', r['uuid'], *v)
    eq((s['priority'], s['description']), (20, 'cli rc 2'), 'inspection rules: set')
    fails(['inspection', 'rule', 'set', r['uuid'], '--priority', '10000', *v],
          'inspection rules: priority above 9999', 'between 0 and 9999')
    fails(['inspection', 'rule', 'create', '--actions',
           json.dumps([{'op': 'fail', 'args': {}}]), *v],
          'inspection rules: an action without its arguments', 'missing required argument(s): msg')
    fails(['inspection', 'rule', 'create', '--phase', 'early', '--actions', acts, *v],
          'inspection rules: unknown phase', 'Invalid phase: early')
    sens = js('inspection', 'rule', 'create', '--sensitive', 'true', '--actions', acts, *v)
    st['rules'].append(sens['uuid'])
    eq((sens['sensitive'], sens['actions']), (True, None),
       'inspection rules: a sensitive rule hides its actions')
    run('inspection', 'rule', 'delete', r['uuid'], *v)
    fails(['inspection', 'rule', 'show', r['uuid'], *v], 'inspection rules: deleted',
          'could not be found')


def section_node_extras(st):
    n = js('node', 'create', '--driver', 'fake-hardware', '--name', 'cli-vifs')
    st['nodes'].append(n['uuid'])
    fails(['node', 'vif', 'attach', 'cli-vifs', 'vif-x'], 'vifs: a node without ports',
          'not enough free physical ports')
    p = js('port', 'create', '52:54:00:cc:00:01', '--node', n['uuid'])
    run('node', 'vif', 'attach', 'cli-vifs', 'vif-x')
    eq([x['id'] for x in rows('node', 'vif', 'list', 'cli-vifs')], ['vif-x'], 'vifs: attach, list')
    eq(js('port', 'show', p['uuid'])['internal_info'], {'tenant_vif_port_id': 'vif-x'},
       'vifs: recorded on the port')
    fails(['node', 'vif', 'attach', 'cli-vifs', 'vif-y'], 'vifs: no free port left',
          'not enough free physical ports')
    run('node', 'vif', 'detach', 'cli-vifs', 'vif-x')
    eq(rows('node', 'vif', 'list', 'cli-vifs'), [], 'vifs: detach')
    fails(['node', 'vif', 'detach', 'cli-vifs', 'vif-x'], 'vifs: detach twice',
          'not attached to it')
    eq(rows('node', 'bios', 'setting', 'list', 'cli-vifs'), [], 'bios: no settings')
    fails(['node', 'bios', 'setting', 'show', 'cli-vifs', 'ProcVirt'], 'bios: a missing setting',
          "doesn't have a BIOS setting 'ProcVirt'")
    eq(rows('node', 'firmware', 'list', 'cli-vifs'), [], 'firmware: no components')
    run('port', 'delete', p['uuid'])


def section_node_behaviours(st):
    for name, extra in (('cli-b1', ['--resource-class', 'cli-b', '--description', 'rack 7 top']),
                        ('cli-b2', ['--resource-class', 'cli-b', '--shard', 'b-east']),
                        ('cli-b3', ['--resource-class', 'cli-other'])):
        st['nodes'].append(js('node', 'create', '--driver', 'fake-hardware', '--name', name,
                              *extra)['uuid'])
    names = lambda *a: sorted(x['name'] for x in rows('node', 'list', *a))  # noqa: E731
    eq(names('--resource-class', 'cli-b'), ['cli-b1', 'cli-b2'], 'nodes: list --resource-class')
    eq(names('--description-contains', 'rack 7'), ['cli-b1'], 'nodes: list --description-contains')
    eq(names('--shards', 'b-east'), ['cli-b2'], 'nodes: list --shards')
    ordered = [x['name'] for x in rows('node', 'list', '--resource-class', 'cli-b',
                                         '--sort', 'name:desc')]
    eq(ordered, ['cli-b2', 'cli-b1'], 'nodes: list --sort name:desc')
    got = rows('node', 'list', '--resource-class', 'cli-b', '--fields', 'name', 'owner')
    eq(sorted(got[0]), ['name', 'owner'], 'nodes: list --fields')
    inst = '7c1b2d0e-8f35-4a4e-9b0c-0b6a4b3f9a11'
    run('node', 'set', 'cli-b3', '--instance-uuid', inst,
        '--instance-info', 'display_name=db-01')
    n = js('node', 'show', 'cli-b3')
    eq((n['instance_uuid'], n['instance_name']), (inst, 'db-01'),
       'nodes: instance_name follows instance_info.display_name')
    eq(names('--associated', '--resource-class', 'cli-other'), ['cli-b3'], 'nodes: list --associated')
    run('node', 'unset', 'cli-b3', '--instance-uuid')
    eq(js('node', 'show', 'cli-b3')['instance_uuid'], None, 'nodes: unset --instance-uuid')
    run('node', 'set', 'cli-b3', '--retired', '--retired-reason', 'end of life')
    eq(names('--retired', '--resource-class', 'cli-other'), ['cli-b3'], 'nodes: list --retired')
    run('node', 'unset', 'cli-b3', '--retired')
    n = js('node', 'show', 'cli-b3')
    eq((n['retired'], n['retired_reason']), (False, None),
       'nodes: unsetting retired clears the reason')
    h = rows('node', 'history', 'list', 'cli-b3')
    ok(len(h) > 0 and 'event' in h[0], 'history: list', h[:1])
    one = js('node', 'history', 'get', 'cli-b3', h[-1]['uuid'])
    eq(one['uuid'], h[-1]['uuid'], 'history: get one entry')
    fails(['node', 'history', 'get', 'cli-b3', '00000000-1111-2222-3333-444444444444'],
          'history: a missing entry', 'Node history record')


SECTIONS = [
    ('chassis', section_chassis),
    ('conductors', section_conductors),
    ('port groups', section_port_groups),
    ('node traits', section_traits),
    ('allocations', section_allocations),
    ('deploy templates', section_deploy_templates),
    ('volume', section_volume),
    ('runbooks', section_runbooks),
    ('inspection rules', section_inspection_rules),
    ('VIFs, BIOS, firmware', section_node_extras),
    ('node behaviours', section_node_behaviours),
]


def cleanup(st):
    for r in st['rules']:
        run('inspection', 'rule', 'delete', r, '--os-baremetal-api-version', '1.115',
            check=False)
    for r in st['runbooks']:
        run('runbook', 'delete', r, check=False)
    for t in st['templates']:
        run('deploy', 'template', 'delete', t, check=False)
    for n in reversed(st['nodes']):
        run('node', 'delete', n, check=False)
    if st.get('chassis'):
        run('chassis', 'delete', st['chassis'], check=False)


def main(argv):
    args = [a for a in argv[1:] if not a.startswith('--')]
    Tally.keep_going = '--keep-going' in argv[1:]
    if len(args) != 1:
        print(__doc__, file=sys.stderr)
        return 2
    ENV.update(os.environ)
    ENV.update({'OS_ENDPOINT': args[0].rstrip('/'), 'OS_AUTH_TYPE': 'none'})
    for k in ('OS_CLOUD', 'OS_BAREMETAL_API_VERSION'):
        ENV.pop(k, None)
    st = {'nodes': [], 'templates': [], 'runbooks': [], 'rules': []}
    aborted = None
    try:
        for name, fn in SECTIONS:
            print(f'== {name}', flush=True)
            fn(st)
    except Abort as e:
        aborted = str(e)
        if aborted not in Tally.failures:
            Tally.failures.append(aborted)
    finally:
        cleanup(st)
    if Tally.failures:
        print(f'\n{Tally.passes} checks passed, {len(Tally.failures)} failed', flush=True)
        for f in Tally.failures:
            print(f'FAILED: {f}', file=sys.stderr)
        return 1
    print(f'\nall {Tally.passes} checks passed', flush=True)
    return 0


if __name__ == '__main__':
    sys.exit(main(sys.argv))
