# nsenter: an Ansible connection into a booted test host (test/hosts): the
# host is a systemd PID 1 in its own PID, mount, UTS, IPC and network
# namespaces on this machine; ansible_host is that PID as seen from here.
# Every command runs as `nsenter -t PID -a -r -w` (all its namespaces, its
# root and working directory), as test/hosts' Host.Command does. The lab
# has no ssh into its hosts, and community.general's chroot connection
# would run in this machine's network and PID namespaces. Test-only: not
# shipped in contrib/ansible.
from __future__ import annotations

DOCUMENTATION = """
name: nsenter
short_description: run commands in a booted test host's namespaces
description:
  - Enters every namespace, the root and the working directory of a process
    (the host's systemd) with nsenter; files go through cat inside the host.
author: vipkit
options:
  remote_addr:
    description: PID of the host's init, as seen from the controller
    vars:
      - name: inventory_hostname
      - name: ansible_host
"""

import os
import shlex
import subprocess

from ansible.errors import AnsibleConnectionFailure, AnsibleError
from ansible.plugins.connection import ConnectionBase

ENV = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C", "HOME": "/root"}


class Connection(ConnectionBase):
    transport = "nsenter"
    has_pipelining = True
    default_user = "root"

    def _pid(self):
        pid = str(self.get_option("remote_addr"))
        if not pid.isdigit() or not os.path.exists("/proc/%s/ns/mnt" % pid):
            raise AnsibleConnectionFailure("nsenter: no host with init PID %r" % pid)
        return pid

    def _connect(self):
        self._pid()
        self._connected = True
        return self

    def _argv(self, cmd):
        return ["nsenter", "-t", self._pid(), "-a", "-r", "-w", "--", "/bin/sh", "-c", cmd]

    def exec_command(self, cmd, in_data=None, sudoable=True):
        super().exec_command(cmd, in_data=in_data, sudoable=sudoable)
        p = subprocess.Popen(self._argv(cmd), env=ENV, stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        out, err = p.communicate(in_data)
        return p.returncode, out, err

    def put_file(self, in_path, out_path):
        super().put_file(in_path, out_path)
        with open(in_path, "rb") as f:
            p = subprocess.run(self._argv("cat > %s" % shlex.quote(out_path)), env=ENV, stdin=f,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        if p.returncode != 0:
            raise AnsibleError("nsenter: put %s: %s" % (out_path, p.stderr.decode(errors="replace")))

    def fetch_file(self, in_path, out_path):
        super().fetch_file(in_path, out_path)
        with open(out_path, "wb") as f:
            p = subprocess.run(self._argv("cat %s" % shlex.quote(in_path)), env=ENV,
                               stdout=f, stderr=subprocess.PIPE)
        if p.returncode != 0:
            raise AnsibleError("nsenter: fetch %s: %s" % (in_path, p.stderr.decode(errors="replace")))

    def close(self):
        self._connected = False
