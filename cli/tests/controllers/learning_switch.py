# A small MAC-learning switch for os-ken over OpenFlow 1.3, in the manner of os-ken's old
# simple_switch_13 example (which neither Debian's python3-os-ken 2.5 nor PyPI's os-ken 4.x
# ships any more). Written for vswitch's controller tests (cli/tests/controllers.rs):
#
#   /usr/bin/python3 /usr/bin/osken-manager --ofp-listen-host 127.0.0.1 \
#       --ofp-tcp-listen-port PORT learning_switch.py
#
# It prints one line per event on standard output, flushed, for the test to wait on:
#   SWITCH dpid=<16 hex digits>                    a switch's FEATURES_REPLY arrived
#   TABLE-MISS dpid=...                            the priority-0 -> CONTROLLER flow was sent
#   LEARN dpid=... mac=... port=N                  a source MAC was learnt (or moved)
#   FLOW dpid=... in_port=N eth_src=... eth_dst=... out=M   a priority-1 flow was sent
#   PACKET-OUT dpid=... in_port=N out=M|FLOOD      a packet-out was sent
#   GONE dpid=...                                  the switch's connection closed

import sys

from os_ken.base import app_manager
from os_ken.controller import ofp_event
from os_ken.controller.handler import (
    CONFIG_DISPATCHER,
    DEAD_DISPATCHER,
    MAIN_DISPATCHER,
    set_ev_cls,
)
from os_ken.lib.packet import ether_types, ethernet, packet
from os_ken.ofproto import ofproto_v1_3


def say(line):
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


class LearningSwitch13(app_manager.OSKenApp):
    OFP_VERSIONS = [ofproto_v1_3.OFP_VERSION]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # dpid -> {mac: port}
        self.mac_to_port = {}

    @set_ev_cls(ofp_event.EventOFPSwitchFeatures, CONFIG_DISPATCHER)
    def switch_features_handler(self, ev):
        dp = ev.msg.datapath
        ofp = dp.ofproto
        parser = dp.ofproto_parser
        say("SWITCH dpid=%016x" % dp.id)
        # Table miss: everything else to the controller, whole packets (no buffering).
        match = parser.OFPMatch()
        actions = [parser.OFPActionOutput(ofp.OFPP_CONTROLLER, ofp.OFPCML_NO_BUFFER)]
        self.add_flow(dp, 0, match, actions)
        say("TABLE-MISS dpid=%016x" % dp.id)

    @set_ev_cls(ofp_event.EventOFPStateChange, DEAD_DISPATCHER)
    def state_change_handler(self, ev):
        dp = ev.datapath
        if dp.id is not None:
            say("GONE dpid=%016x" % dp.id)

    def add_flow(self, dp, priority, match, actions):
        ofp = dp.ofproto
        parser = dp.ofproto_parser
        inst = [parser.OFPInstructionActions(ofp.OFPIT_APPLY_ACTIONS, actions)]
        dp.send_msg(
            parser.OFPFlowMod(
                datapath=dp, priority=priority, match=match, instructions=inst
            )
        )

    @set_ev_cls(ofp_event.EventOFPPacketIn, MAIN_DISPATCHER)
    def packet_in_handler(self, ev):
        msg = ev.msg
        dp = msg.datapath
        ofp = dp.ofproto
        parser = dp.ofproto_parser
        in_port = msg.match["in_port"]

        pkt = packet.Packet(msg.data)
        eth = pkt.get_protocols(ethernet.ethernet)[0]
        if eth.ethertype == ether_types.ETH_TYPE_LLDP:
            return
        dst, src = eth.dst, eth.src

        table = self.mac_to_port.setdefault(dp.id, {})
        if table.get(src) != in_port:
            table[src] = in_port
            say("LEARN dpid=%016x mac=%s port=%d" % (dp.id, src, in_port))

        out_port = table.get(dst, ofp.OFPP_FLOOD)
        actions = [parser.OFPActionOutput(out_port)]
        if out_port != ofp.OFPP_FLOOD:
            match = parser.OFPMatch(in_port=in_port, eth_dst=dst, eth_src=src)
            self.add_flow(dp, 1, match, actions)
            say(
                "FLOW dpid=%016x in_port=%d eth_src=%s eth_dst=%s out=%d"
                % (dp.id, in_port, src, dst, out_port)
            )

        # The table-miss flow asks for whole packets, so the data goes back with the
        # packet-out whatever buffer_id says.
        data = msg.data if msg.buffer_id == ofp.OFP_NO_BUFFER else None
        dp.send_msg(
            parser.OFPPacketOut(
                datapath=dp,
                buffer_id=msg.buffer_id,
                in_port=in_port,
                actions=actions,
                data=data,
            )
        )
        say(
            "PACKET-OUT dpid=%016x in_port=%d out=%s"
            % (dp.id, in_port, "FLOOD" if out_port == ofp.OFPP_FLOOD else out_port)
        )
