"""The stages, in the order the data goes through them (docs/architecture.md).

- :mod:`~drifthouse.stream.sources`: raw messages of a bounded input, one partition's order each;
- :mod:`~drifthouse.stream.stage`: decode -> window -> sketch for one source partition, handing
  out partial windows; refused and late input goes to :mod:`~drifthouse.stream.dead_letters`;
- :mod:`~drifthouse.stream.windows`: the event-time panes and watermark a stage keeps;
- :mod:`~drifthouse.stream.merge`: the partials of every partition merged in partition order,
  evaluated and written once every watermark has passed; :mod:`~drifthouse.stream.results` says
  which rows a closed window writes;
- :mod:`~drifthouse.stream.labels`: the label join and the label windows, fed by the merge stage;
- :mod:`~drifthouse.stream.metric_events`: the windows of metric events, fed by the merge stage;
- :mod:`~drifthouse.stream.side_inputs`: labels and metric events of a bounded run, released as
  the predictions' event time reaches them.

Nothing here reads Kafka or runs a worker: :mod:`drifthouse.kafka` and :mod:`drifthouse.app` do.
"""
